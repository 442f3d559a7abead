"""Scenario files: a seeded city for the simulator, in TOML. Pure: parsing and checks only.

A scenario says how many workers there are and how they behave, how much demand there
is and where, how long the run lasts and how fast simulated time runs (see
``time_scale`` below and docs/simulation.md). Unknown keys are errors, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Share = Annotated[float, msgspec.Meta(ge=0, le=1)]
Hour = Annotated[float, msgspec.Meta(ge=0, le=24)]
Span = Annotated[list[NonNegative], msgspec.Meta(min_length=2, max_length=2)]


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the key and the rule."""


def _span(value: list[float], name: str) -> None:
    if value[0] > value[1]:
        raise ScenarioError(f"{name}: must be [low, high] with low <= high, got {value}")


class Shift(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A share of the workers is on shift from ``start_hour`` to ``end_hour`` (simulated)."""

    start_hour: Hour
    end_hour: Hour
    share: Share

    def __post_init__(self) -> None:
        if self.start_hour >= self.end_hour:
            raise ScenarioError("workers.shifts: start_hour must be before end_hour")


class Workers(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The simulated workers' number and behaviour."""

    count: Annotated[int, msgspec.Meta(ge=1, le=20000)]
    skills: list[str] = msgspec.field(
        default_factory=lambda: ["cleaning", "appliance_cleaning", "plumbing"]
    )
    # Certificate kinds each simulated worker holds, registered and verified by the admin
    # (a service requiring others cannot be in the mix).
    certificates: list[str] = msgspec.field(default_factory=list)
    start: Literal["hotspots", "uniform"] = "hotspots"  # where they are when the run starts
    fix_interval_s: Span = msgspec.field(default_factory=lambda: [1.0, 5.0])
    speed_factor: Positive = 0.85  # median speed as a share of the road graph's speed
    speed_sd: NonNegative = 0.15  # log-normal spread of that factor, per trip
    stop_share: Share = 0.15  # share of intersections where they wait (lights, crossings)
    stop_s: Span = msgspec.field(default_factory=lambda: [5.0, 40.0])
    walk_mps: Positive = 1.3  # from the road to the door, on foot
    accept_share: Share = 0.9  # offers accepted (the rest rejected with a reason)
    accept_delay_s: Span = msgspec.field(default_factory=lambda: [2.0, 12.0])
    ignore_share: Share = 0.02  # offers never answered (they time out)
    manual_arrive_share: Share = 0.2  # tap "arrived" instead of waiting for the geofence
    start_delay_s: Span = msgspec.field(default_factory=lambda: [10.0, 40.0])  # at the door
    disconnects_per_hour: NonNegative = 0.5  # lost connections per worker per wall hour
    disconnect_s: Span = msgspec.field(default_factory=lambda: [10.0, 90.0])
    shifts: list[Shift] = msgspec.field(
        default_factory=lambda: [Shift(start_hour=0.0, end_hour=24.0, share=1.0)]
    )

    def __post_init__(self) -> None:
        for name in ("fix_interval_s", "stop_s", "accept_delay_s", "start_delay_s", "disconnect_s"):
            _span(getattr(self, name), f"workers.{name}")
        if self.fix_interval_s[0] < 0.5:
            raise ScenarioError("workers.fix_interval_s: at least 0.5 s between fixes")
        if self.accept_share + self.ignore_share > 1:
            raise ScenarioError("workers: accept_share + ignore_share must be <= 1")
        if not self.shifts or not math.isclose(sum(s.share for s in self.shifts), 1.0):
            raise ScenarioError("workers.shifts: the shares must add up to 1")


class Hotspot(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A place demand clusters around (a residential area): a Gaussian blob."""

    name: str
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lng: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    sd_m: Positive = 600.0
    weight: Positive = 1.0


class ServiceMix(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A service customers book, and its share of bookings (weights are normalised)."""

    code: str
    weight: Positive = 1.0
    # Always booked for a window (a service not bookable instantly, e.g. a crew's
    # move_in_cleaning); otherwise scheduled with the demand's scheduled_share.
    always_scheduled: bool = False


class Demand(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Customers and their bookings."""

    orders_per_min: Positive  # wall-clock bookings per minute when the curve is at its mean
    customers: Annotated[int, msgspec.Meta(ge=1, le=100000)] = 100
    curve: Literal["lade", "flat"] = "lade"  # the hourly shape (LaDe order times, or none)
    scheduled_share: Share = 0.1
    scheduled_lead_min: Span = msgspec.field(default_factory=lambda: [32.0, 45.0])
    scheduled_window_min: Span = msgspec.field(default_factory=lambda: [30.0, 40.0])
    cancel_share: Share = 0.05  # bookings the customer will cancel
    patience_min: Span = msgspec.field(
        default_factory=lambda: [2.0, 8.0]
    )  # ... if unassigned by then
    rating_share: Share = 0.8  # completed orders the customer rates
    share_link_share: Share = 0.2  # orders also watched by someone holding a share link
    background_share: Share = 0.25  # addresses anywhere in the area, not near a hot spot
    services: list[ServiceMix] = msgspec.field(
        default_factory=lambda: [
            ServiceMix(code="daily_cleaning_2h", weight=4.0),
            ServiceMix(code="ac_cleaning", weight=2.0),
            ServiceMix(code="drain_unclogging", weight=1.0),
            ServiceMix(code="pipe_repair", weight=1.0),
        ]
    )
    hotspots: list[Hotspot] = msgspec.field(
        default_factory=lambda: [
            Hotspot(name="车公庙", lat=22.5370, lng=114.0240, sd_m=600.0, weight=3.0),
            Hotspot(name="香蜜湖", lat=22.5450, lng=114.0180, sd_m=500.0, weight=2.0),
            Hotspot(name="下沙", lat=22.5240, lng=114.0280, sd_m=500.0, weight=2.0),
            Hotspot(name="竹子林", lat=22.5360, lng=114.0040, sd_m=500.0, weight=1.0),
        ]
    )

    def __post_init__(self) -> None:
        for name in ("scheduled_lead_min", "scheduled_window_min", "patience_min"):
            _span(getattr(self, name), f"demand.{name}")
        windows = self.scheduled_share > 0 or any(s.always_scheduled for s in self.services)
        if windows and self.scheduled_lead_min[0] < 30:
            raise ScenarioError(
                "demand.scheduled_lead_min: the server refuses windows less than 30 min ahead"
            )
        if windows and self.scheduled_window_min[0] < 30:
            raise ScenarioError("demand.scheduled_window_min: windows are at least 30 min long")
        if not self.services:
            raise ScenarioError("demand.services: at least one service")
        if not self.hotspots and self.background_share < 1:
            raise ScenarioError("demand.hotspots: none given, so background_share must be 1")


class Load(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Load mode: add workers and watchers step by step until a service level breaks."""

    start_workers: Annotated[int, msgspec.Meta(ge=1)] = 50
    step_workers: Annotated[int, msgspec.Meta(ge=1)] = 50
    max_workers: Annotated[int, msgspec.Meta(ge=1)] = 2000
    watchers_per_order: Annotated[int, msgspec.Meta(ge=1, le=50)] = 3
    settle_s: Positive = 10.0  # after adding a step, before measuring
    window_s: Positive = 30.0  # measured per step
    fanout_p99_ms: Positive = 200.0  # the service levels: break when either is exceeded
    fix_to_index_p99_ms: Positive = 100.0
    trip_m: Span = msgspec.field(default_factory=lambda: [1500.0, 3500.0])

    def __post_init__(self) -> None:
        _span(self.trip_m, "load.trip_m")


class Scenario(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One simulated city run."""

    name: str
    seed: int
    workers: Workers
    demand: Demand
    city: str = "shenzhen"
    duration_min: Positive = 30.0  # bookings are placed for this long (wall clock)
    drain_min: NonNegative = 15.0  # then wait at most this long for open orders to end
    warmup_min: NonNegative = 0.0  # orders booked earlier are served but not measured
    # Simulated seconds per wall second for the demand curve, shifts and time on site;
    # travel, offers and everything the server times run at 1x (docs/simulation.md).
    time_scale: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 6.0
    start_hour: Annotated[float, msgspec.Meta(ge=0, lt=24)] = 13.0
    load: Load = msgspec.field(default_factory=Load)

    def __post_init__(self) -> None:
        if self.warmup_min >= self.duration_min:
            raise ScenarioError("warmup_min: must be shorter than duration_min")

    @property
    def duration_s(self) -> float:
        """How long bookings are placed (wall seconds)."""
        return self.duration_min * 60

    def sim_hour(self, wall_s: float) -> float:
        """The simulated hour of day ``wall_s`` seconds into the run (may pass 24)."""
        return self.start_hour + wall_s * self.time_scale / 3600

    def hour_of(self, wall_s: float) -> int:
        """The simulated hour of the day (0-23) at ``wall_s`` after the run started."""
        return int(self.sim_hour(wall_s)) % 24


def parse_scenario(data: dict[str, object], source: str = "scenario") -> Scenario:
    """A checked :class:`Scenario` from a TOML table (errors name the key)."""
    try:
        return msgspec.convert(data, Scenario)
    except msgspec.ValidationError as e:
        raise ScenarioError(f"{source}: {e}".replace("$.", "")) from None
    except ScenarioError as e:
        raise ScenarioError(f"{source}: {e}") from None


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{path}: {e}") from None
    return parse_scenario(data, str(path))
