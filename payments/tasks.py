"""The payments' jobs: closing unpaid orders, closing trades, sending refunds, the
active query of trades and refunds whose notification did not come."""

from __future__ import annotations

from datetime import UTC, datetime

from procrastinate import Blueprint, JobContext, RetryStrategy

from jobs.app import service
from payments.errors import ProviderUnavailable
from payments.service import QUEUE, Payments

blueprint = Blueprint()
NAMESPACE = "payments"
_RETRY = RetryStrategy(max_attempts=12, exponential_wait=2, retry_exceptions={ProviderUnavailable})


@blueprint.task(name="close_unpaid", queue=QUEUE, pass_context=True, retry=_RETRY)
async def close_unpaid(context: JobContext, order_id: int) -> None:
    """An order still waiting for its payment when its time is up closes and frees its slot."""
    await service(context, Payments).close_unpaid(order_id)


@blueprint.task(name="close_trade", queue=QUEUE, pass_context=True, retry=_RETRY)
async def close_trade(context: JobContext, out_trade_no: str) -> None:
    """A cancelled order's unpaid trade is closed at the provider."""
    await service(context, Payments).close_trade(out_trade_no)


@blueprint.task(name="send_refund", queue=QUEUE, pass_context=True, retry=_RETRY)
async def send_refund(context: JobContext, out_refund_no: str) -> None:
    """Ask the provider for a refund set up in a transaction (idempotent by its number)."""
    await service(context, Payments).send_refund(out_refund_no)


@blueprint.periodic(cron="* * * * * */30")  # the sixth field is seconds
@blueprint.task(name="sweep", queue=QUEUE, pass_context=True, queueing_lock="payments-sweep")
async def sweep(context: JobContext, timestamp: int) -> None:
    """Every 30 s: query trades pending too long (a notification that never came) and
    refunds open too long."""
    await service(context, Payments).sweep(datetime.now(UTC))
