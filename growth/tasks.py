"""Growth's periodic work: membership levels checked and monthly coupon packs issued;
discounts applied and held by no trade released at the end of their hold."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from procrastinate import Blueprint, JobContext

from growth.service import Growth
from jobs.app import service as job_service

blueprint = Blueprint()
NAMESPACE = "growth"
log = logging.getLogger("doorstep.growth")


@blueprint.periodic(cron="5 16 * * *")  # 00:05 China time: a new month's packs at its start
@blueprint.task(name="members", queue=NAMESPACE, pass_context=True, queueing_lock="growth:members")
async def members(context: JobContext, timestamp: int) -> None:
    """Daily: levels follow the rolling window (downgrades as points age out), and each
    member above the first level gets this month's pack once."""
    checked, issued = await job_service(context, Growth).members.run(
        datetime.fromtimestamp(timestamp, UTC)
    )
    log.info("membership: %d customers checked, %d pack coupons issued", checked, issued)


@blueprint.periodic(cron="* * * * * */30")  # the sixth field is seconds
@blueprint.task(name="holds", queue=NAMESPACE, pass_context=True, queueing_lock="growth:holds")
async def holds(context: JobContext, timestamp: int) -> None:
    """Every 30 s: a discount applied and held by no trade (none made, or the one it had
    replaced) past its hold is released — its coupon and points back to the customer."""
    released = await job_service(context, Growth).release_expired(datetime.now(UTC))
    if released:
        log.info("discounts: %d held by no trade released", released)
