"""Settlement's jobs: settle what is due, pay out approved withdrawals, poll payouts,
reconcile yesterday's bill."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from procrastinate import Blueprint, JobContext, RetryStrategy

from jobs.app import service
from settlement.errors import BillUnavailable
from settlement.rules import local_day
from settlement.service import QUEUE, Settlement

blueprint = Blueprint()
NAMESPACE = "settlement"
log = logging.getLogger("doorstep.settlement")


@blueprint.periodic(cron="* * * * *")
@blueprint.task(name="settle_due", queue=QUEUE, pass_context=True, queueing_lock="settle_due")
async def settle_due(context: JobContext, timestamp: int) -> None:
    """Every minute: settle the orders whose after-sales window has passed."""
    n = await service(context, Settlement).settle_due(datetime.now(UTC))
    if n:
        log.info("settled %d orders", n)


@blueprint.task(
    name="pay_out",
    queue=QUEUE,
    pass_context=True,
    retry=RetryStrategy(max_attempts=10, exponential_wait=2),
)
async def pay_out(context: JobContext, withdrawal_id: int) -> None:
    """Hand an approved withdrawal to the payout channel (idempotent by its batch number)."""
    await service(context, Settlement).pay_out(withdrawal_id, datetime.now(UTC))


@blueprint.task(
    name="poll_payout",
    queue=QUEUE,
    pass_context=True,
    retry=RetryStrategy(max_attempts=10, exponential_wait=2),
)
async def poll_payout(context: JobContext, withdrawal_id: int) -> None:
    """Ask how a payout stands; finish it when final, else ask again later."""
    await service(context, Settlement).poll_payout(withdrawal_id, datetime.now(UTC))


@blueprint.periodic(cron="30 2 * * *")  # 10:30 in China: WeChat's bills are ready from 10:00
@blueprint.task(name="reconcile", queue=QUEUE, pass_context=True, queueing_lock="reconcile")
async def reconcile_yesterday(context: JobContext, timestamp: int) -> None:
    """Daily: yesterday's trade bill of each provider with a bill source, against the ledger."""
    settlement = service(context, Settlement)
    now = datetime.now(UTC)
    day = local_day(now, settlement.params) - timedelta(days=1)
    for provider, source in settlement.bills.items():
        try:  # one provider's bill missing does not keep the others from being reconciled
            bill = await source.trade_bill(day)
        except BillUnavailable as e:
            log.error("no %s bill for %s to reconcile: %s", provider, day, e.message)
            continue
        run = await settlement.reconcile(provider, day, bill, now)
        log.info("reconciled %s %s: %d differences", provider, day, run.differences)
