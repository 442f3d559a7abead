"""The analytics capability's periodic work: keep the rollups fresh."""

from __future__ import annotations

import logging

from procrastinate import Blueprint, JobContext

from analytics import service
from doorstep.stores import Stores
from jobs.app import service as job_service

blueprint = Blueprint()
NAMESPACE = "analytics"
log = logging.getLogger("doorstep.analytics")


@blueprint.periodic(cron="*/5 * * * *")
@blueprint.task(
    name="refresh", queue=NAMESPACE, pass_context=True, queueing_lock="analytics:refresh"
)
async def refresh(context: JobContext, timestamp: int) -> None:
    """Every 5 minutes: rebuild the rollup days touched since the last run."""
    report = await service.refresh(job_service(context, Stores).pool)
    if report.days:
        log.info(
            "analytics refresh: %d days, %d orders placed, %d ms",
            report.days,
            report.placed,
            report.took_ms,
        )
