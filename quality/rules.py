"""Quality and discipline rules, without I/O: a worker's quality score from what they did
in a window, and the rewards and penalties the score calls for. ``now`` comes in.

The score (0–100) is half service (the average rating, shrunk towards a prior so that a
few ratings do not decide it) and half reliability (100 % less complaints, lateness,
jobs the worker dropped and failed spot checks, plus a little for passed spot checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Kind = Literal["warning", "fine", "suspension", "dismissal", "bonus", "badge", "priority"]
PENALTIES = frozenset({"warning", "fine", "suspension", "dismissal"})
REWARDS = frozenset({"bonus", "badge", "priority"})


@dataclass(frozen=True, slots=True)
class QualityParams:
    """The score's weights and the thresholds of rewards and penalties."""

    window_days: int = 90
    prior_stars: float = 4.5
    prior_weight: float = 5.0
    complaint_points: float = 10.0
    late_points: float = 30.0  # at a 100 % late rate
    dropped_points: float = 30.0  # at a 100 % dropped rate
    spot_fail_points: float = 10.0
    spot_pass_points: float = 2.0
    late_grace_min: int = 10
    reward_at: int = 90
    reward_min_jobs: int = 10
    bonus_fen: int = 5000
    warning_below: int = 60
    fine_below: int = 50
    fine_fen: int = 5000
    suspension_below: int = 40
    suspension_days: int = 7
    dismissal_below: int = 20
    dismissal_after_suspensions: int = 3


@dataclass(frozen=True, slots=True)
class Facts:
    """What a worker did in the window."""

    jobs: int = 0
    stars_sum: int = 0
    ratings: int = 0
    complaints: int = 0
    late: int = 0
    scheduled: int = 0  # jobs with a window (lateness is measured on them)
    dropped: int = 0  # jobs the worker gave back after taking them
    spot_passed: int = 0
    spot_failed: int = 0


@dataclass(frozen=True, slots=True)
class Score:
    """A quality score with its parts, for the worker and the operators to read."""

    score: int
    rating: float  # the shrunk average, 1–5
    service: float  # 0–50
    reliability: float  # 0–50
    late_rate: float
    dropped_rate: float
    facts: Facts = field(default_factory=Facts)


@dataclass(frozen=True, slots=True)
class Proposal:
    """An action the score calls for."""

    kind: Kind
    reason: str
    amount_fen: int | None = None
    days: int | None = None


def score(facts: Facts, params: QualityParams) -> Score:
    """The score of ``facts``."""
    rating = (params.prior_stars * params.prior_weight + facts.stars_sum) / (
        params.prior_weight + facts.ratings
    )
    service = 50.0 * (rating - 1.0) / 4.0
    late_rate = facts.late / facts.scheduled if facts.scheduled else 0.0
    taken = facts.jobs + facts.dropped
    dropped_rate = facts.dropped / taken if taken else 0.0
    loss = (
        params.complaint_points * facts.complaints
        + params.late_points * late_rate
        + params.dropped_points * dropped_rate
        + params.spot_fail_points * facts.spot_failed
        - params.spot_pass_points * facts.spot_passed
    )
    reliability = max(0.0, min(50.0, 50.0 - loss))
    total = round(max(0.0, min(100.0, service + reliability)))
    return Score(
        total,
        round(rating, 2),
        round(service, 1),
        round(reliability, 1),
        round(late_rate, 3),
        round(dropped_rate, 3),
        facts,
    )


def proposals(s: Score, params: QualityParams, *, suspensions_before: int) -> list[Proposal]:
    """The rewards or penalties a score calls for (the most severe penalty only)."""
    n = s.score
    if n >= params.reward_at and s.facts.jobs >= params.reward_min_jobs:
        why = f"quality score {n} ≥ {params.reward_at} over {s.facts.jobs} jobs"
        return [
            Proposal("badge", why),
            Proposal("bonus", why, amount_fen=params.bonus_fen),
            Proposal("priority", why, days=30),
        ]
    if n < params.dismissal_below or (
        n < params.suspension_below and suspensions_before + 1 >= params.dismissal_after_suspensions
    ):
        return [
            Proposal("dismissal", f"quality score {n}; {suspensions_before} earlier suspension(s)")
        ]
    if n < params.suspension_below:
        return [
            Proposal(
                "suspension",
                f"quality score {n} < {params.suspension_below}",
                days=params.suspension_days,
            )
        ]
    if n < params.fine_below:
        return [
            Proposal("fine", f"quality score {n} < {params.fine_below}", amount_fen=params.fine_fen)
        ]
    if n < params.warning_below:
        return [Proposal("warning", f"quality score {n} < {params.warning_below}")]
    return []


def fine_split(amount_fen: int, available_fen: int) -> tuple[int, int]:
    """How a fine is charged: ``(taken from the wallet's balance, owed)``. The available
    balance pays as far as it goes; the rest is owed and recovered from the next earnings
    (the wallet never goes below zero, and nothing is written off)."""
    if amount_fen <= 0:
        raise ValueError("a fine is a positive number of fen")
    taken = min(amount_fen, max(available_fen, 0))
    return taken, amount_fen - taken


def ends_at(p: Proposal, now: datetime) -> datetime | None:
    """When an action of ``p`` ends (suspensions and priority), else None."""
    return now + timedelta(days=p.days) if p.days else None
