"""The privacy capability's jobs: anonymising accounts whose deletion is due."""

from __future__ import annotations

from datetime import UTC, datetime

from procrastinate import Blueprint, JobContext

from doorstep.stores import Stores
from jobs.app import service
from privacy import pipl

blueprint = Blueprint()
NAMESPACE = "privacy"
QUEUE = "privacy"


@blueprint.periodic(cron="*/5 * * * *")
@blueprint.task(name="anonymise", queue=QUEUE, pass_context=True, queueing_lock="privacy:anon")
async def anonymise(context: JobContext, timestamp: int) -> None:
    """Every 5 minutes: anonymise the accounts whose deletion's cooling-off is over."""
    await pipl.anonymise_due(service(context, Stores), now=datetime.now(UTC), limit=100)
