"""The periodic work of requirements on the site's worker."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from gridplatform.accounts.models import Role, User


@shared_task(
    name="flexibility.requirements_clear", ignore_result=True, time_limit=60, soft_time_limit=50
)
def requirements_clear() -> int:
    """Clear every slot past its gate that still has an open requirement (signed by the grid
    operator): its rest and its answers' expire and release their margins, and the slot may
    settle (``flexibility.services.slots_clear``)."""
    from flexibility import services

    operator = User.objects.filter(role=Role.GRID_OPERATOR, is_active=True).order_by("id").first()
    if operator is None:
        return 0
    return len(services.slots_clear(operator=operator, now=timezone.now()))
