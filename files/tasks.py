"""The files capability's periodic work."""

from __future__ import annotations

from procrastinate import Blueprint, JobContext

from doorstep.stores import Stores
from files import service
from files.blobs import LocalBlobStore
from jobs.app import service as job_service

blueprint = Blueprint()
NAMESPACE = "files"


@blueprint.periodic(cron="17 * * * *")
@blueprint.task(name="cleanup", queue=NAMESPACE, pass_context=True, queueing_lock="files:cleanup")
async def cleanup(context: JobContext, timestamp: int) -> None:
    """Hourly: remove files left unattached, contents nothing uses, half-written ones."""
    await service.cleanup(
        job_service(context, Stores), job_service(context, LocalBlobStore), now=timestamp
    )
