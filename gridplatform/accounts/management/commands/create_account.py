from __future__ import annotations

import getpass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gridplatform.accounts import services
from gridplatform.accounts.models import HouseholdKind, Role


class Command(BaseCommand):
    help = (
        "Create an account with its Ed25519 identity: a grid operator, a regulator, a household "
        "or an admin. The password comes from --password-env, else it is asked for."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--household-kind", choices=HouseholdKind.values, default="")
        parser.add_argument(
            "--password-env",
            metavar="VAR",
            help="read the password from this environment variable (for scripts)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        import os

        role = options["role"]
        kind = options["household_kind"]
        if (role == Role.HOUSEHOLD) != bool(kind):
            raise CommandError("--household-kind is required for households and only for them")
        if options["password_env"]:
            password = os.environ.get(options["password_env"])
            if not password:
                raise CommandError(f"{options['password_env']} is not set")
        else:
            password = getpass.getpass("Password: ")
        try:
            user = services.user_create(
                email=options["email"],
                name=options["name"],
                password=password,
                role=role,
                household_kind=kind,
            )
        except services.AccountError as error:
            raise CommandError(error.message) from None
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        address = user.identity.address if role != Role.ADMIN else "-"
        self.stdout.write(f"created {user.role} {user.email} address {address}")
