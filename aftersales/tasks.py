"""After-sales jobs: escalating tickets past their SLA, sampling spot checks."""

from __future__ import annotations

from datetime import UTC, datetime

from procrastinate import Blueprint, JobContext

from aftersales.service import Aftersales
from jobs.app import service

blueprint = Blueprint()
NAMESPACE = "aftersales"
QUEUE = "aftersales"


@blueprint.periodic(cron="* * * * *")  # every minute
@blueprint.task(
    name="escalate", queue=QUEUE, pass_context=True, queueing_lock="aftersales:escalate"
)
async def escalate(context: JobContext, timestamp: int) -> None:
    """Every minute: tickets past their first-response or resolution deadline go up a
    level and the staff hear of it."""
    await service(context, Aftersales).escalate_due(datetime.now(UTC))


@blueprint.periodic(cron="30 2 * * *")  # 02:30 UTC (10:30 Beijing), daily
@blueprint.task(
    name="spot_checks", queue=QUEUE, pass_context=True, queueing_lock="aftersales:spot_checks"
)
async def spot_checks(context: JobContext, timestamp: int) -> None:
    """Daily: the last whole period's completed orders are sampled into call-back tasks
    (a period already sampled adds nothing)."""
    await service(context, Aftersales).sample_spot_checks(datetime.now(UTC))
