"""Onboarding's periodic work: certificate expiry reminders (30 and 7 days before)."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from procrastinate import Blueprint, JobContext

from doorstep.stores import Stores
from jobs.app import service as job_service
from onboarding import certificates

blueprint = Blueprint()
NAMESPACE = "onboarding"
log = logging.getLogger("doorstep.onboarding")
ZONE = ZoneInfo("Asia/Shanghai")  # reminders are dated in China time


@blueprint.periodic(cron="0 1 * * *")  # 09:00 China time
@blueprint.task(
    name="certificate_reminders",
    queue=NAMESPACE,
    pass_context=True,
    queueing_lock="onboarding:certificate_reminders",
)
async def certificate_reminders(context: JobContext, timestamp: int) -> None:
    """Daily: tell workers whose certificates expire within 30 or 7 days."""
    today = datetime.fromtimestamp(timestamp, ZONE).date()
    made = await certificates.remind_expiring(job_service(context, Stores), today)
    if made:
        log.info("certificate reminders: %d", made)
