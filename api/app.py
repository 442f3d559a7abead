"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from accounts.service import TokenPolicy
from aftersales.rules import AftersalesParams
from aftersales.service import Aftersales
from api import background, errors, fastrouter, logredact, openapi
from api.metrics import (
    BackboneCollector,
    DispatchMetrics,
    GcCollector,
    HttpMetrics,
    TrackingCollector,
)
from api.routes import (
    accounts,
    admin,
    aftersales,
    analytics,
    catalog,
    city_sites,
    files,
    growth,
    maps,
    merchants,
    notifications,
    onboarding,
    orders,
    pages,
    payments,
    permissions,
    plans,
    privacy,
    quality,
    reviews,
    safety,
    settlement,
    sockets,
    system,
    tracking,
    workforce,
)
from api.routing import Endpoint, encode, to_routes
from api.secheaders import SecureStarlette
from api.worker_socket import WorkerGateway
from api.wsprotocol import GATEWAY_STATE, LIVE_LIMITS_STATE
from dispatch import service as dispatch_service
from dispatch.dayplan import DayPlanParams
from dispatch.engine import Engine, EngineParams
from dispatch.offers import OfferParams
from dispatch.plans import DayPlans
from dispatch.review_rules import ReviewParams
from doorstep import __version__
from doorstep.gcpolicy import GcParams, GcPolicy
from doorstep.params import ParamsError, from_mapping, load_toml
from doorstep.settings import Settings, from_env, load_secret_key
from doorstep.stores import Stores
from events import probe
from events.relay import Consumer, Relay
from events.rules import DeliveryParams
from growth.levels import MembershipParams
from growth.rules import GrowthParams
from growth.service import Growth
from jobs import app as jobs_app
from jobs.runner import JobParams, JobRunner
from matching.params import MatchParams
from matching.planner import PlannerParams
from notifications import gateway
from notifications.service import Notifier
from notifications.sms import AliyunLikeSms
from onboarding import gateway as verify_gateway
from payments import alipay_gateway
from payments import gateway as payments_gateway
from payments.rules import PaymentParams
from permissions import rules
from permissions.models import Role
from privacy import gateway as axb_gateway
from privacy.axb import AliyunLikeAxb
from privacy.service import Masking
from safety.rules import SafetyParams
from safety.service import SafetyDesk
from safety.trail import TrailParams
from safety.watch import TrailWatch
from settlement import alipay_bills, wechat_bills
from settlement import gateway as payout_gateway
from settlement.payouts import WeChatTransfers
from settlement.rules import SettlementParams
from settlement.service import Settlement
from tracking import order_push
from tracking.archive import ArchiveParams
from tracking.eta import EtaParams
from tracking.fixes import FixParams
from tracking.geofence import ArrivalParams
from tracking.ingest import IngestParams
from tracking.service import Tracking
from tracking.session import LiveSocketParams, SocketParams

log = logging.getLogger("doorstep.api")

ROUTERS = (
    system.router,
    accounts.router,
    catalog.router,
    workforce.router,
    tracking.router,
    orders.router,
    maps.router,
    pages.router,
    plans.router,
    files.router,
    notifications.router,
    admin.router,
    analytics.router,
    privacy.router,
    payments.router,
    onboarding.router,
    quality.router,
    safety.router,
    settlement.router,
    permissions.router,
    merchants.router,
    city_sites.router,
    reviews.router,
    aftersales.router,
    growth.router,
)


def endpoints() -> list[Endpoint]:
    """Every declared endpoint of the API."""
    return [ep for router in ROUTERS for ep in router.endpoints]


@dataclass(frozen=True, slots=True)
class PresenceParams:
    """When a silent worker becomes stale (section ``[presence]``)."""

    stale_after_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.stale_after_s > 0:
            raise ValueError("stale_after_s must be > 0")


@dataclass(frozen=True, slots=True)
class Tuning:
    """Every tuning table of the params file (``DOORSTEP_PARAMS``), defaults for the rest."""

    fixes: FixParams
    socket: SocketParams
    live_socket: LiveSocketParams
    ingest: IngestParams
    archive: ArchiveParams
    presence: PresenceParams
    eta: EtaParams
    arrival: ArrivalParams
    matching: MatchParams
    offers: OfferParams
    engine: EngineParams
    gc: GcParams
    planner: PlannerParams
    plans: DayPlanParams
    events: DeliveryParams
    jobs: JobParams
    payments: PaymentParams
    safety: SafetyParams
    trail: TrailParams
    settlement: SettlementParams
    reviews: ReviewParams
    aftersales: AftersalesParams
    growth: GrowthParams
    membership: MembershipParams

    @classmethod
    def load(cls, path: Path | None) -> Tuning:
        """Read and check the file (unknown tables and keys are errors)."""
        tables = load_toml(path) if path else {}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(tables) - known)
        if unknown:
            raise ParamsError(f"unknown table; known: {', '.join(sorted(known))}", field=unknown[0])
        classes = {
            "fixes": FixParams,
            "socket": SocketParams,
            "live_socket": LiveSocketParams,
            "ingest": IngestParams,
            "archive": ArchiveParams,
            "presence": PresenceParams,
            "eta": EtaParams,
            "arrival": ArrivalParams,
            "matching": MatchParams,
            "offers": OfferParams,
            "engine": EngineParams,
            "gc": GcParams,
            "planner": PlannerParams,
            "plans": DayPlanParams,
            "events": DeliveryParams,
            "jobs": JobParams,
            "payments": PaymentParams,
            "safety": SafetyParams,
            "trail": TrailParams,
            "settlement": SettlementParams,
            "reviews": ReviewParams,
            "aftersales": AftersalesParams,
            "growth": GrowthParams,
            "membership": MembershipParams,
        }
        return cls(
            **{
                name: from_mapping(kind, tables.get(name, {}), section=name)
                for name, kind in classes.items()
            }
        )


def create_app(settings: Settings, stores: Stores | None = None) -> Starlette:
    """The ASGI app. With ``stores`` given, the caller owns them; else the app opens its own."""
    key = settings.secret_key or load_secret_key(settings.data_dir)
    metrics = HttpMetrics.create()
    dispatch_metrics = DispatchMetrics.create(metrics.registry)
    eps = endpoints()
    tuning = Tuning.load(settings.params_file)  # a bad params file fails here, at start-up

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        logredact.install()  # after uvicorn configured its loggers
        own = stores is None
        app.state.stores = await Stores.open(settings) if own else stores
        app.state.tracking = Tracking(
            app.state.stores,
            fix_params=tuning.fixes,
            socket_params=tuning.socket,
            stale_after_s=tuning.presence.stale_after_s,
            eta_params=tuning.eta,
            arrival_params=tuning.arrival,
            ingest_params=tuning.ingest,
            archive_params=tuning.archive,
        )
        tracking_rt = app.state.tracking
        tracking_rt.job_source = partial(dispatch_service.job_of, app.state.stores)
        tracking_rt.on_arrival = partial(
            dispatch_service.arrived_by_geofence, app.state.stores, tracking_rt
        )
        await tracking_rt.start()
        app.state.plans = DayPlans(
            app.state.stores,
            tracking_rt,
            params=tuning.plans,
            planner_params=tuning.planner,
            merchant_overflow_s=tuning.engine.merchant_overflow_s,
        )
        app.state.engine = Engine(
            app.state.stores,
            tracking_rt,
            match=tuning.matching,
            offer=tuning.offers,
            engine=tuning.engine,
            plans=app.state.plans,
            on_tick=dispatch_metrics.observe,
        )
        if app.state.engine.params.enabled:
            app.state.engine.start()
        assert settings.database_url is not None
        app.state.sms_sandbox = None
        sms_config = gateway.configured(settings, key) if settings.sms_url else None
        if sms_config is None:  # no gateway configured: the sandbox, in this process
            sms_config, app.state.sms_sandbox = await gateway.start_sandbox(
                settings, key, app.state.stores.pool
            )
        app.state.sms = AliyunLikeSms(sms_config)
        # identity verification and background checks: the sandbox provider (onboarding/)
        app.state.verifier, app.state.verify_sandbox = await verify_gateway.start_sandbox(key)
        app.state.notifier = Notifier(
            app.state.stores,
            presence=tracking_rt,
            provider=app.state.sms,
            receipt_secret=sms_config.secret,
        )
        app.state.axb_sandbox = None
        axb_config = axb_gateway.configured(settings)
        if axb_config is None:  # no provider configured: the sandbox, in this process
            axb_config, app.state.axb_sandbox = await axb_gateway.start_sandbox(key)
        app.state.axb = AliyunLikeAxb(axb_config)
        app.state.masking = Masking(app.state.axb)
        app.state.payments, app.state.wechat_sandbox = await payments_gateway.start_payments(
            settings, app.state.stores, tuning.payments
        )
        # Alipay: the configured gateway, else its sandbox in this process (docs/payments-alipay.md)
        app.state.alipay_sandbox = await alipay_gateway.add_to(
            app.state.payments, settings, tuning.payments
        )
        app.state.safety = SafetyDesk(
            app.state.stores,
            feed=tracking_rt,
            sms=app.state.notifier,
            params=tuning.safety,
            link_key=key,
            base_url=settings.base_url,
        )
        app.state.trail_watch = TrailWatch(tuning.trail, app.state.safety.anomaly)
        tracking_rt.on_job_fix = app.state.trail_watch.on_fix
        payout_config, app.state.payout_sandbox = await payout_gateway.start_sandbox(
            settings, app.state.stores.pool
        )
        app.state.payouts = WeChatTransfers(payout_config)
        app.state.bills = wechat_bills.start(settings, app.state.wechat_sandbox)
        app.state.bills |= alipay_bills.start(  # Alipay's 业务账单 (docs/settlement.md)
            app.state.alipay_sandbox, app.state.payments.providers.get("alipay")
        )
        app.state.settlement = Settlement(
            app.state.stores,
            tuning.settlement,
            app.state.payouts,
            appid=payout_config.appid,
            bills=app.state.bills,
        )
        app.state.aftersales = Aftersales(
            app.state.stores,
            tuning.aftersales,
            window_days=tuning.settlement.after_sales_days,  # one window: T+N
            payments=app.state.payments,
            tracking=tracking_rt,
            match=tuning.matching,
        )
        app.state.growth = Growth(app.state.stores, tuning.growth, tuning.membership)
        consumers: list[Consumer] = [
            probe.consumer(),
            app.state.masking.consumer(),
            order_push.live_push(tracking_rt),
            order_push.eta_learning(tracking_rt.eta),
            order_push.alert_push(tracking_rt),
            app.state.plans.consumer(),
            app.state.notifier.consumer(),
            app.state.payments.consumer(),
            app.state.settlement.consumer(),
            app.state.growth.consumer(),
        ]
        app.state.relay = Relay(
            app.state.stores.pool, settings.database_url, consumers, tuning.events
        )
        if tuning.events.in_process:  # else another process holds the relay's roles
            app.state.relay.start()
        app.state.job_app = jobs_app.build(settings.database_url, background.blueprints())
        app.state.jobs = None
        if tuning.jobs.in_process:
            app.state.jobs = JobRunner(
                app.state.job_app,
                app.state.stores.pool,
                background.services(
                    settings,
                    app.state.stores,
                    tuning.jobs,
                    app.state.notifier,
                    app.state.payments,
                    safety=tuning.safety,
                    settlement=app.state.settlement,
                    aftersales=app.state.aftersales,
                    growth=app.state.growth,
                ),
                tuning.jobs,
            )
            await app.state.jobs.start()
        app.state.worker_gateway = WorkerGateway(
            tracking_rt, app.state.policy, offer_cooldown_s=tuning.offers.cooldown_s
        )
        app.state.worker_gateway.safety = app.state.safety
        app.state.worker_gateway.start()
        app.state.gc = GcPolicy(tuning.gc)
        app.state.gc.start()  # last: what start-up built is frozen first
        try:
            # uvicorn hands this state to its protocols: api.wsprotocol finds the gateway,
            # and the limits of the order and feed sockets.
            yield {GATEWAY_STATE: app.state.worker_gateway, LIVE_LIMITS_STATE: tuning.live_socket}
        finally:
            await app.state.gc.stop()
            if app.state.jobs is not None:
                await app.state.jobs.stop()
            await app.state.relay.stop()
            await app.state.sms.close()
            await app.state.axb.close()
            if app.state.axb_sandbox is not None:
                await app.state.axb_sandbox.stop()
            await payments_gateway.stop_payments(app.state.payments, app.state.wechat_sandbox)
            await app.state.payouts.close()
            for bills in app.state.bills.values():
                await bills.close()
            await app.state.payout_sandbox.stop()
            if app.state.sms_sandbox is not None:
                await app.state.sms_sandbox.stop()
            if app.state.alipay_sandbox is not None:
                await app.state.alipay_sandbox.stop()
            await app.state.verifier.close()
            await app.state.verify_sandbox.stop()
            await app.state.worker_gateway.stop()
            await app.state.trail_watch.stop()
            await app.state.engine.stop()
            await app.state.plans.stop()
            await app.state.tracking.stop()
            if own:
                await app.state.stores.close()

    app = SecureStarlette(  # security headers on every HTTP answer (api/secheaders.py)
        routes=[*to_routes(eps, metrics.observe), *sockets.ROUTES, pages.STATIC],
        exception_handlers={
            HTTPException: errors.http_exception,
            ClientDisconnect: errors.client_gone,
            Exception: errors.unexpected,
        },
        lifespan=lifespan,
    )
    fastrouter.install(app)  # a request's route found by its path's prefix (api/fastrouter.py)
    app.state.settings = settings
    app.state.review_params = tuning.reviews
    app.state.live_limits = (
        tuning.live_socket
    )  # the order and feed sockets' (api/routes/sockets.py)
    app.state.policy = TokenPolicy(
        key=key,
        access_ttl_s=settings.access_token_ttl_s,
        refresh_ttl_s=settings.refresh_token_ttl_s,
    )
    app.state.metrics = metrics
    metrics.registry.register(TrackingCollector(app.state))
    metrics.registry.register(GcCollector(app.state))
    app.state.backbone_metrics = BackboneCollector(app.state)
    metrics.registry.register(app.state.backbone_metrics)
    app.state.openapi = encode(openapi.build(eps, title="Doorstep", version=__version__))
    declared = [(ep.roles, ep.permission) for ep in eps]
    declared += [(roles, perm) for _, roles, perm in sockets.DECLARED]
    base = rules.base_role_permissions(declared)
    app.state.base_permissions = base
    app.state.base_roles = [
        Role(role, role, perms, (rules.base_scope(role),), builtin=True)
        for role, perms in base.items()
    ]
    if stores is not None:
        app.state.stores = stores
    return app


def create_app_from_env() -> Starlette:
    """For ``uvicorn --factory`` and multi-worker serving: settings from the environment."""
    return create_app(from_env())
