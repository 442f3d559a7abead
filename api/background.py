"""What runs beside the requests: the job queue's tasks and the services they use.

Shared by the server (``api/app.py``, with ``[jobs] in_process``) and ``doorstep worker``
(a job worker alone), so both run the same tasks with the same services.
"""

from __future__ import annotations

from typing import Any

from procrastinate import Blueprint

from aftersales import tasks as aftersales_tasks
from aftersales.rules import AftersalesParams
from aftersales.service import Aftersales
from analytics import tasks as analytics_tasks
from dispatch import tasks as dispatch_tasks
from doorstep.settings import Settings, load_secret_key
from doorstep.stores import Stores
from files import tasks as files_tasks
from files.blobs import LocalBlobStore, local_store
from growth import tasks as growth_tasks
from growth.levels import MembershipParams
from growth.rules import GrowthParams
from growth.service import Growth
from jobs import tasks as jobs_tasks
from jobs.runner import JobParams
from notifications import tasks as notifications_tasks
from notifications.service import Notifier
from onboarding import tasks as onboarding_tasks
from payments import tasks as payments_tasks
from payments.service import Payments
from privacy import tasks as privacy_tasks
from quality import tasks as quality_tasks
from safety import tasks as safety_tasks
from safety.rules import SafetyParams
from safety.service import RedisFeed, SafetyDesk
from settlement import tasks as settlement_tasks
from settlement.rules import SettlementParams
from settlement.service import Settlement


def blueprints() -> dict[str, Blueprint]:
    """Every capability's tasks, by namespace."""
    return {
        jobs_tasks.NAMESPACE: jobs_tasks.blueprint,
        files_tasks.NAMESPACE: files_tasks.blueprint,
        dispatch_tasks.NAMESPACE: dispatch_tasks.blueprint,
        notifications_tasks.NAMESPACE: notifications_tasks.blueprint,
        analytics_tasks.NAMESPACE: analytics_tasks.blueprint,
        payments_tasks.NAMESPACE: payments_tasks.blueprint,
        onboarding_tasks.NAMESPACE: onboarding_tasks.blueprint,
        safety_tasks.NAMESPACE: safety_tasks.blueprint,
        settlement_tasks.NAMESPACE: settlement_tasks.blueprint,
        quality_tasks.NAMESPACE: quality_tasks.blueprint,
        aftersales_tasks.NAMESPACE: aftersales_tasks.blueprint,
        privacy_tasks.NAMESPACE: privacy_tasks.blueprint,
        growth_tasks.NAMESPACE: growth_tasks.blueprint,
    }


def services(
    settings: Settings,
    stores: Stores,
    jobs: JobParams,
    notifier: Notifier,
    payments: Payments | None = None,
    safety: SafetyParams | None = None,
    *,
    settlement: Settlement | None = None,
    aftersales: Aftersales | None = None,
    aftersales_params: AftersalesParams | None = None,
    growth: Growth | None = None,
    growth_params: GrowthParams | None = None,
    membership: MembershipParams | None = None,
) -> dict[type[Any], Any]:
    """The objects tasks look up by class (``jobs.app.service``)."""
    desk = SafetyDesk(
        stores,
        feed=RedisFeed(stores),
        sms=notifier,
        params=safety or SafetyParams(),
        link_key=settings.secret_key or load_secret_key(settings.data_dir),
        base_url=settings.base_url,
    )
    found: dict[type[Any], Any] = {
        SafetyDesk: desk,
        Stores: stores,
        JobParams: jobs,
        LocalBlobStore: local_store(settings.data_dir),
        Notifier: notifier,
        Growth: growth or Growth(stores, growth_params, membership),
    }
    if payments is not None:
        found[Payments] = payments
    if settlement is not None:
        found[Settlement] = settlement
    found[Aftersales] = aftersales or Aftersales(
        stores,
        aftersales_params or AftersalesParams(),
        window_days=(settlement.params if settlement else SettlementParams()).after_sales_days,
        payments=payments,
    )
    return found
