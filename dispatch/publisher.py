"""What dispatch needs of the live side: a narrow interface of its own.

Dispatch pushes a few messages itself (offers and their withdrawal to a worker's socket,
overrides to the city's dispatcher feed, a changed day plan to its workers, a chained
order's new expected departure to its watchers), reads the
road graph and the learned ETA bias (a prediction at departure, the engine's ETAs), and
names its engine lease after the process. Everything else that follows an order's change
reacts to the order's domain events (docs/events.md). The app passes its
``tracking.service.Tracking``, which has all of this; dispatch never imports it, so the
dependency runs one way (docs/architecture.md) and a test can pass anything that fits.
"""

from __future__ import annotations

from typing import Any, Protocol

from geo.roadgraph import RoadGraph
from tracking.eta import EtaParams
from tracking.eta_calibration import EtaCalibration


class Etas(Protocol):
    """Road graphs and the learned ETA range per city (``tracking.eta_store.EtaStore``)."""

    async def graph_for(self, city_id: str) -> RoadGraph | None: ...

    def stats_for(self, city_id: str, ts_ms: int) -> EtaCalibration: ...


class Publisher(Protocol):
    """The messages dispatch sends itself, and the ETA inputs it reads."""

    @property
    def process_id(self) -> str:
        """This server process's id (the engine's lease holder)."""
        ...

    @property
    def eta(self) -> Etas: ...

    @property
    def eta_params(self) -> EtaParams: ...

    async def send_to_worker(self, worker_id: int, payload: dict[str, Any]) -> bool:
        """Push a message down the worker's socket, wherever it is; False if offline."""
        ...

    async def publish_feed(self, city_id: str, payload: dict[str, Any]) -> None:
        """Send a message to the city's dispatcher feed."""
        ...

    async def publish_order(self, city_id: str, order_id: int, payload: dict[str, Any]) -> None:
        """Send a message to everyone watching the order (its socket)."""
        ...
