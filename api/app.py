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

from accounts.service import TokenPolicy
from api import errors, logredact, openapi
from api.metrics import DispatchMetrics, GcCollector, HttpMetrics, TrackingCollector
from api.routes import (
    accounts,
    catalog,
    maps,
    orders,
    pages,
    plans,
    sockets,
    system,
    tracking,
    workforce,
)
from api.routing import Endpoint, encode, to_route
from api.worker_socket import WorkerGateway
from api.wsprotocol import GATEWAY_STATE
from dispatch import service as dispatch_service
from dispatch.dayplan import DayPlanParams
from dispatch.engine import Engine, EngineParams
from dispatch.offers import OfferParams
from dispatch.plans import DayPlans
from doorstep import __version__
from doorstep.gcpolicy import GcParams, GcPolicy
from doorstep.params import ParamsError, from_mapping, load_toml
from doorstep.settings import Settings, from_env, load_secret_key
from doorstep.stores import Stores
from matching.params import MatchParams
from matching.planner import PlannerParams
from tracking.archive import ArchiveParams
from tracking.eta import EtaParams
from tracking.fixes import FixParams
from tracking.geofence import ArrivalParams
from tracking.ingest import IngestParams
from tracking.service import Tracking
from tracking.session import SocketParams

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
            app.state.stores, tracking_rt, params=tuning.plans, planner_params=tuning.planner
        )
        tracking_rt.on_order_change = app.state.plans.on_order_change
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
        app.state.worker_gateway = WorkerGateway(tracking_rt, app.state.policy)
        app.state.worker_gateway.start()
        app.state.gc = GcPolicy(tuning.gc)
        app.state.gc.start()  # last: what start-up built is frozen first
        try:
            # uvicorn hands this state to its protocols: api.wsprotocol finds the gateway.
            yield {GATEWAY_STATE: app.state.worker_gateway}
        finally:
            await app.state.gc.stop()
            await app.state.worker_gateway.stop()
            await app.state.engine.stop()
            await app.state.plans.stop()
            await app.state.tracking.stop()
            if own:
                await app.state.stores.close()

    app = Starlette(
        routes=[*(to_route(ep, metrics.observe) for ep in eps), *sockets.ROUTES, pages.STATIC],
        exception_handlers={HTTPException: errors.http_exception, Exception: errors.unexpected},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.policy = TokenPolicy(
        key=key,
        access_ttl_s=settings.access_token_ttl_s,
        refresh_ttl_s=settings.refresh_token_ttl_s,
    )
    app.state.metrics = metrics
    metrics.registry.register(TrackingCollector(app.state))
    metrics.registry.register(GcCollector(app.state))
    app.state.openapi = encode(openapi.build(eps, title="Doorstep", version=__version__))
    if stores is not None:
        app.state.stores = stores
    return app


def create_app_from_env() -> Starlette:
    """For ``uvicorn --factory`` and multi-worker serving: settings from the environment."""
    return create_app(from_env())
