"""The notifications' jobs: sending an SMS, a reminder."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from procrastinate import Blueprint, JobContext, RetryStrategy

from jobs.app import service
from notifications.rules import Reminder
from notifications.service import QUEUE, SMS_MAX_ATTEMPTS, Notifier
from notifications.sms import SmsFailed

blueprint = Blueprint()
NAMESPACE = "notifications"


@blueprint.task(
    name="send_sms",
    queue=QUEUE,
    pass_context=True,
    # 2, 4, 8 … s apart (a gateway's per-phone limit lifts within the minute).
    retry=RetryStrategy(
        max_attempts=SMS_MAX_ATTEMPTS - 1, exponential_wait=2, retry_exceptions={SmsFailed}
    ),
)
async def send_sms(context: JobContext, message_id: int) -> None:
    """Hand a queued SMS to the gateway (idempotent: the message id is its OutId)."""
    attempt = context.job.attempts if context.job else 0
    await service(context, Notifier).send_sms(message_id, attempt=attempt, now=datetime.now(UTC))


@blueprint.task(name="remind", queue=QUEUE, pass_context=True)
async def remind(context: JobContext, order_id: int, which: str, window_start: str) -> None:
    """The evening-before or hour-before reminder of a scheduled service."""
    await service(context, Notifier).remind(
        order_id,
        cast(Reminder, which),
        datetime.fromisoformat(window_start),
        now=datetime.now(UTC),
    )
