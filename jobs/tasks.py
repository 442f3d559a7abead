"""The job runner's own periodic tasks."""

from __future__ import annotations

from procrastinate import Blueprint, JobContext

from doorstep.stores import Stores
from jobs.app import service
from jobs.runner import JobParams, recover_stalled

blueprint = Blueprint()
NAMESPACE = "jobs"


@blueprint.periodic(cron="* * * * * */15")  # the sixth field is seconds
@blueprint.task(
    name="recover_stalled", queue=NAMESPACE, pass_context=True, queueing_lock="jobs:recover_stalled"
)
async def recover_stalled_jobs(context: JobContext, timestamp: int) -> None:
    """Every 15 s: jobs of dead workers go back to waiting."""
    await recover_stalled(service(context, Stores).pool, service(context, JobParams))
