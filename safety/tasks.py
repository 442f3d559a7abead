"""The safety capability's jobs: escalating an SOS nobody acknowledged."""

from __future__ import annotations

from datetime import UTC, datetime

from procrastinate import Blueprint, JobContext

from jobs.app import service
from safety.service import QUEUE, SafetyDesk

blueprint = Blueprint()
NAMESPACE = "safety"


@blueprint.task(name="escalate", queue=QUEUE, pass_context=True)
async def escalate(context: JobContext, alert_id: int) -> None:
    """Tell the staff of an SOS still unacknowledged; plan the next round."""
    await service(context, SafetyDesk).escalate(alert_id, now=datetime.now(UTC))


@blueprint.periodic(cron="* * * * * */30")  # the sixth field is seconds
@blueprint.task(name="sweep", queue=QUEUE, pass_context=True, queueing_lock="safety:sweep")
async def sweep(context: JobContext, timestamp: int) -> None:
    """Every 30 s: an SOS whose follow-ups were lost (a crash right after its commit)
    gets its escalation job and its contacts' SMS again."""
    await service(context, SafetyDesk).sweep(datetime.now(UTC))
