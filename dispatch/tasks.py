"""Dispatch's periodic jobs (jobs/, Procrastinate)."""

from __future__ import annotations

from datetime import UTC, datetime

from procrastinate import Blueprint, JobContext

from dispatch.overdue import flag_overdue
from doorstep.stores import Stores
from jobs.app import service

blueprint = Blueprint()
NAMESPACE = "dispatch"


@blueprint.periodic(cron="* * * * * 0")
@blueprint.task(
    name="flag_overdue", queue=NAMESPACE, pass_context=True, queueing_lock="dispatch:flag_overdue"
)
async def flag_overdue_orders(context: JobContext, timestamp: int) -> None:
    """Every minute: alert dispatchers of orders stuck on site (dispatch/overdue.py)."""
    await flag_overdue(service(context, Stores), datetime.now(UTC))
