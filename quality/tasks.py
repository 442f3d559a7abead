"""Quality's job: book the money of fines and bonuses recorded before the ledger existed."""

from __future__ import annotations

import logging

from procrastinate import Blueprint, JobContext

from doorstep.stores import Stores
from jobs.app import service
from quality.service import book_unbooked

blueprint = Blueprint()
NAMESPACE = "quality"
log = logging.getLogger("doorstep.quality")


@blueprint.periodic(cron="*/10 * * * *")
@blueprint.task(name="book_unbooked", queue="quality", pass_context=True, queueing_lock="book")
async def book_unbooked_task(context: JobContext, timestamp: int) -> None:
    """Every ten minutes: fines and bonuses still ``unbooked`` are booked (a no-op once the
    rows from before the ledger are done: new actions are booked when they are given)."""
    n = await book_unbooked(service(context, Stores))
    if n:
        log.info("booked the money of %d discipline actions recorded before the ledger", n)
