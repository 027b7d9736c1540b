"""The market's periodic work on the site's worker."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from gridplatform.accounts.models import Role, User


@shared_task(name="market.slots_clear", ignore_result=True, time_limit=60, soft_time_limit=50)
def slots_clear() -> int:
    """Clear every slot past its gate with open orders or offers (signed by the grid operator)."""
    from market import services

    operator = User.objects.filter(role=Role.GRID_OPERATOR, is_active=True).order_by("id").first()
    if operator is None:
        return 0
    return len(services.slots_clear(operator=operator, now=timezone.now()))


@shared_task(name="market.slots_settle", ignore_result=True, time_limit=60, soft_time_limit=50)
def slots_settle() -> int:
    """Settle every slot due (ended, its meter data's delay past), signed by the grid operator."""
    from market import services

    operator = User.objects.filter(role=Role.GRID_OPERATOR, is_active=True).order_by("id").first()
    if operator is None:
        return 0
    return len(services.slots_settle(operator=operator, now=timezone.now()))
