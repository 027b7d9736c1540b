"""``manage.py audit_read_models [--json]``: every read model compared with the chain."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ledger import read_model_audit, replica


class Command(BaseCommand):
    help = (
        "Compare every read model (LEDGER_READ_MODEL_AUDITS) with the committed state at the "
        "projected height; print each difference (model, row, field, chain value, site value, "
        "height) and a summary. Exit status 1 when any is found. Records nothing: the beat task "
        "ledger.read_models_audit does."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            help='one JSON object: {"height", "count", "differences": [{"model", "row", '
            '"field", "chain", "site", "height"}, ...]}',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = read_model_audit.read_models_compare()
        except replica.ReplicaUnavailable as error:
            if options["json"]:
                self.stdout.write(json.dumps({"height": None, "count": 0, "differences": []}))
            else:
                self.stdout.write(str(error))
            return
        found = report.differences
        if options["json"]:
            body = {
                "height": report.height,
                "count": len(found),
                "differences": [d.to_json() for d in found],
            }
            self.stdout.write(json.dumps(body, sort_keys=True))
        else:
            for difference in found:
                self.stdout.write(difference.line())
            if found:
                self.stdout.write(
                    f"{len(found)} difference(s) between the read models and the chain at "
                    f"height {report.height}"
                )
            else:
                self.stdout.write(f"the read models agree with the chain at height {report.height}")
        if found:
            raise SystemExit(1)
