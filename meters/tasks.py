"""The meters' periodic work on the site's worker."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="meters.relay_pending", ignore_result=True, time_limit=120, soft_time_limit=100)
def relay_pending() -> int:
    """Send again meter registrations and reading batches that did not reach the ledger."""
    from meters import relay

    return relay.relay_pending()
