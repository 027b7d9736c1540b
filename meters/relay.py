"""Meter data to the ledger: the site relays what the devices signed; the validators check it.

The grid operator's custodial key signs the relay transactions (it is the data hub):

* ``meter.register`` when a meter is registered (``meters.services.meter_register``): the
  validators learn its owner, kind, feeder, interval and device key;
* ``meter.readings`` for every stored batch (``meters.services.readings_ingest``): the exact
  bytes the device signed, its timestamp and signature, which every validator checks against the
  registered device key before recording a reading (``meters.chain.metering``).

Both run after the site's transaction committed. A relay that cannot go now (no grid operator
with a custodial key, no network yet, the operator's admission refused it) is logged, and the
beat task ``meters.relay_pending`` sends it again later: batches keep the id of their relay
transaction, and a meter not on the ledger is registered there again.

After relaying a batch, its latest interval is announced (``meters.signals.batch_relayed``): the
market's standing rules react to it (``market.rules``), without the meters knowing them.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from gridplatform.accounts.models import Role, User
from gridplatform.errors import DomainError
from ledger.crypto import Transaction
from ledger.models import StateEntry, SubmittedTransaction, TransactionRecord
from ledger.services import transaction_sign_and_submit
from meters.chain.schema import meter_key
from meters.models import Meter, Reading, ReadingBatch
from meters.signals import batch_relayed

log = logging.getLogger(__name__)
RETRY_AFTER = timedelta(minutes=2)
# Results of a meter's registration after which relay_pending sends it again.
REGISTER_RETRIED = frozenset({"ok", "unknown_account"})


def _operator() -> User | None:
    operator: User | None = (
        User.objects.filter(role=Role.GRID_OPERATOR, is_active=True, identity__isnull=False)
        .exclude(identity__sealed_private_key=None)
        .order_by("id")
        .first()
    )
    return operator


def _send(type_: str, payload: dict[str, object]) -> Transaction | None:
    operator = _operator()
    if operator is None:
        log.warning("no grid operator with a custodial key: %s not relayed", type_)
        return None
    try:
        return transaction_sign_and_submit(user=operator, type=type_, payload=payload)
    except DomainError as error:
        log.warning("%s not relayed: %s", type_, error.code)
        return None


def _register_payload(meter: Meter) -> dict[str, object]:
    return {
        "meter": meter.meter_id,
        "owner": meter.owner.identity.address,
        "kind": meter.kind,
        "public_key": meter.public_key,
        "feeder": meter.feeder,
        "interval_s": meter.interval_s,
    }


def meter_relay(meter: Meter) -> Transaction | None:
    """Register ``meter`` on the ledger (again, after a device replacement)."""
    return _send("meter.register", _register_payload(meter))


def register_refusals(meters: list[Meter]) -> dict[str, str]:
    """The meters (by id) whose registration the validators refused for good: the same
    registration sent again would be refused again (the meter must change first), with the
    code. A refusal that time can lift (the owner's own registration had not committed:
    ``unknown_account``) is not one of them."""
    wanted = {meter.meter_id: meter for meter in meters}
    if not wanted:
        return {}
    latest: dict[str, TransactionRecord] = {}
    records = TransactionRecord.objects.filter(
        type="meter.register", body__payload__meter__in=list(wanted)
    ).order_by("block_id", "position")
    for record in records:
        latest[record.body["payload"]["meter"]] = record
    return {
        meter_id: record.result
        for meter_id, record in latest.items()
        if record.result not in REGISTER_RETRIED
        and record.body["payload"] == _register_payload(wanted[meter_id])
    }


def _relay_readings(batch: ReadingBatch) -> Transaction | None:
    tx = _send(
        "meter.readings",
        {
            "meter": batch.meter.meter_id,
            "t": batch.signed_t,
            "body": bytes(batch.body).decode("utf-8"),
            "signature": batch.signature,
        },
    )
    if tx is not None:
        ReadingBatch.objects.filter(pk=batch.pk).update(relay_tx=tx.id)
    return tx


def batch_relay(batch: ReadingBatch) -> Transaction | None:
    """Relay a stored batch (what the device signed) and announce its latest interval, so that
    the owner's rules react to it (``batch_relayed``)."""
    tx = _relay_readings(batch)
    _announce(batch)
    return tx


def _announce(batch: ReadingBatch) -> None:
    latest = (
        # On the (meter, start) index: the batch's readings are among the meter's latest.
        Reading.objects.filter(meter_id=batch.meter_id, batch=batch)
        .order_by("-start")
        .values("start", "import_wh", "export_wh", "duration_s")
        .first()
    )
    if latest is None:
        return
    owner = batch.meter.owner
    # send, not send_robust: a receiver's failure fails the task, as the direct call did.
    batch_relayed.send(
        sender=ReadingBatch,
        owner=owner,
        start=latest["start"],
        import_wh=latest["import_wh"],
        export_wh=latest["export_wh"],
        duration_s=latest["duration_s"],
        carrier=batch.meter.carrier,
    )


def relay_pending() -> int:
    """Send again what did not reach the ledger; how many were sent.

    * meters the ledger does not know, whose registration is not pending, unless the validators
      refused that very registration for good (``register_refusals``: it would be refused
      again; the meters page tells the owner why);
    * batches (older than ``RETRY_AFTER``) never relayed, relayed but lost (neither pending nor
      committed), or refused because their meter's registration had not committed yet
      (``unknown_meter``). Other refusals are final: the validators found the batch wrong.
    """
    sent = 0
    pending = SubmittedTransaction.objects.all()
    missing = [
        meter
        for meter in Meter.objects.filter(active=True).select_related("owner__identity")
        if not StateEntry.objects.filter(key=meter_key(meter.meter_id)).exists()
    ]
    refused = register_refusals(missing)
    for meter in missing:
        if meter.meter_id in refused:
            continue  # the owner sees why on the meters page; a changed meter is sent again
        registering = pending.filter(
            body__type="meter.register", body__payload__meter=meter.meter_id
        )
        if not registering.exists():
            sent += meter_relay(meter) is not None
    cutoff = timezone.now() - RETRY_AFTER
    batches = ReadingBatch.objects.filter(received_at__lt=cutoff).select_related("meter")
    for batch in batches.iterator():
        if batch.relay_tx:
            if pending.filter(tx_id=batch.relay_tx).exists():
                continue
            result = TransactionRecord.objects.filter(tx_id=batch.relay_tx)
            outcome = result.values_list("result", flat=True).first()
            if outcome is not None and outcome != "unknown_meter":
                continue
        sent += _relay_readings(batch) is not None
    return sent
