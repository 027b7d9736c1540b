from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from gridplatform.demo import DEMO_PASSWORD, demo_community_create


class Command(BaseCommand):
    help = "Create the demo community (grid operator, regulator, 30 households); idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        logins = demo_community_create()
        self.stdout.write(f"demo community: {len(logins)} accounts, password {DEMO_PASSWORD}")
