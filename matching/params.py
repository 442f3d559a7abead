"""Tuning knobs for matching (TOML table ``[matching]``), validated on construction.

Score units: with the default weights one cost point is one minute of road ETA; each
``weight_*`` says how many such points one unit of its term's raw value is worth
(see ``matching.scoring`` for the raw values and the sign convention).
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, fields
from typing import get_args

import msgspec

from matching.model import Policy


@dataclass(frozen=True, slots=True)
class MatchParams:
    """Weights, feasibility limits, retrieval and policy. Load with
    ``doorstep.params.from_mapping(MatchParams, table, section="matching")``."""

    policy: Policy = "batch"  # "batch" (linear_sum_assignment) or "greedy" (baseline)
    radius_m: float = 5000.0  # retrieval: candidates within this straight-line distance
    k: int = 24  # retrieval: at most this many nearest candidates per job
    fresh_fix_s: float = 60.0  # a location fix older than this makes a worker ineligible
    max_eta_s: float = 2700.0  # a road ETA above this makes a worker ineligible
    instant_sla_s: int = (
        3600  # an instant order must start within this many seconds of being placed
    )
    utc_offset_s: int = 8 * 3600  # local time of the cities served (dates of certificates)
    rating_prior_mean: float = 4.6  # the rating a worker with no ratings is assumed to have
    rating_prior_weight: float = 10.0  # the prior counts as this many ratings
    min_useful_gap_s: float = 3600.0  # free time left shorter than this is a fragment
    weight_eta: float = 1.0  # points per minute of road ETA
    weight_rating: float = 10.0  # points per star below the prior mean (above: a bonus)
    weight_fairness: float = 5.0  # points per unit of relative jobs/earnings above the median
    weight_schedule: float = 5.0  # points per min_useful_gap_s of fragmented free time
    weight_affinity: float = 5.0  # bonus points for a worker who served this customer before
    weight_team: float = 10.0  # bonus points for a worker of the merchant's preferred team
    # Bonus points for a worker with dispatch priority (a quality reward, quality/rules.py):
    # small, so it settles near-ties — a prioritised worker up to 2 minutes farther wins.
    weight_priority: float = 2.0
    infeasible_cost: float = 1e6  # cost of an excluded pair in the assignment (floor)
    # Load-aware scoring (matching.scoring.load_factor): rating and fairness weigh fully
    # from this many open jobs per free worker in a batch, less below, down to 0 (rating)
    # and fairness_floor (fairness) when orders are few and workers idle.
    load_aware: bool = True
    load_full_pressure: float = 2.0
    fairness_floor: float = 0.15
    # Rotation (轮派, matching.assess.rotate): among a job's feasible candidates, those
    # whose ETA is within rotation_slack_s of the best set the reference, the fewest
    # jobs today among them; a candidate with more jobs than that pays, per job above it
    # (at most rotation_cap jobs), as much as rotation_slack_s more ETA. So an idle
    # worker with fewer jobs wins over a busier one (or a chained one) at a similar ETA,
    # and never at more than the slack per job. 0: off. On by default since 2026-12-07
    # (the sweep with chaining 300 s + rotation 60 s: docs/simulation.md).
    rotation_slack_s: float = 60.0
    rotation_cap: float = 2.0
    # Day plans: an instant job must leave a worker time to reach their next planned job:
    # finish, then travel there (straight line × detour at this speed), with this margin.
    plan_speed_mps: float = 4.0
    plan_detour_factor: float = 1.5
    plan_margin_s: float = 600.0
    # Crews (matching.crew): the members of a crew arrive within this of each other.
    crew_window_s: float = 600.0
    # Chained orders (接力单, docs/dispatch.md#chained-orders): a busy worker whose current
    # job ends within this many seconds is a candidate too, from that job's address, with
    # the time left added to the ETA; the job offered starts after the current one.
    # 0: off (only free workers are candidates). On by default since 2026-12-07.
    chain_s: float = 300.0

    def __post_init__(self) -> None:
        if self.policy not in get_args(Policy):
            raise ValueError(f"policy must be one of {', '.join(get_args(Policy))}.")
        positive = (
            "radius_m",
            "fresh_fix_s",
            "max_eta_s",
            "rating_prior_weight",
            "min_useful_gap_s",
            "plan_speed_mps",
            "load_full_pressure",
            "plan_detour_factor",
        )
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0.")
        for f in fields(self):
            if f.name.startswith("weight_"):
                value = getattr(self, f.name)
                if not (math.isfinite(value) and value >= 0):
                    raise ValueError(f"{f.name} must be a finite number >= 0.")
        if self.k < 1:
            raise ValueError("k must be >= 1.")
        if self.instant_sla_s < 1:
            raise ValueError("instant_sla_s must be >= 1.")
        if not -14 * 3600 <= self.utc_offset_s <= 14 * 3600:
            raise ValueError("utc_offset_s must be within ±14 hours.")
        if not 1.0 <= self.rating_prior_mean <= 5.0:
            raise ValueError("rating_prior_mean must be between 1 and 5.")
        if not 0.0 <= self.fairness_floor <= 1.0:
            raise ValueError("fairness_floor must be between 0 and 1.")
        if not (math.isfinite(self.crew_window_s) and self.crew_window_s >= 0):
            raise ValueError("crew_window_s must be a finite number >= 0.")
        if not (math.isfinite(self.rotation_slack_s) and self.rotation_slack_s >= 0):
            raise ValueError("rotation_slack_s must be a finite number >= 0 (0: rotation off).")
        if not (math.isfinite(self.rotation_cap) and self.rotation_cap >= 0):
            raise ValueError("rotation_cap must be a finite number >= 0.")
        if not (math.isfinite(self.chain_s) and self.chain_s >= 0):
            raise ValueError("chain_s must be a finite number >= 0 (0: chaining off).")
        if not (math.isfinite(self.plan_margin_s) and self.plan_margin_s >= 0):
            raise ValueError("plan_margin_s must be a finite number >= 0.")
        if not (math.isfinite(self.infeasible_cost) and self.infeasible_cost >= 1e3):
            raise ValueError("infeasible_cost must be a finite number >= 1000.")


@functools.lru_cache(maxsize=64)
def params_digest(params: MatchParams) -> str:
    """A short, stable fingerprint of ``params`` (stored with every decision)."""
    encoded = msgspec.json.encode(params, order="deterministic")
    return hashlib.sha256(encoded).hexdigest()[:16]
