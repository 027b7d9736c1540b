"""The meters' work on the site's worker: relaying batches to the ledger, and the beat's retry."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="meters.batch_relay", ignore_result=True, acks_late=True)
def batch_relay(batch_pk: int) -> None:
    """Relay one stored batch to the ledger and let its owner's standing rules react
    (``meters.relay.batch_relay``). Queued by ``meters.services.readings_ingest`` after commit."""
    from meters import relay
    from meters.models import ReadingBatch

    batch = (
        ReadingBatch.objects.select_related("meter__owner__identity").filter(pk=batch_pk).first()
    )
    if batch is not None and not batch.relay_tx:
        relay.batch_relay(batch)


@shared_task(name="meters.relay_pending", ignore_result=True, time_limit=120, soft_time_limit=100)
def relay_pending() -> int:
    """Send again meter registrations and reading batches that did not reach the ledger."""
    from meters import relay

    return relay.relay_pending()
