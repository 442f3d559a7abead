"""matching: chained candidates (接力单) — a busy worker whose job ends soon, pure."""

from __future__ import annotations

from dataclasses import replace

import msgspec
import pytest

from matching.assess import assess_all, assess_pair
from matching.assign import decide_batch
from matching.feasibility import chain_note, chained_eta_s, why_not, why_not_eta
from matching.model import Candidate, Chain, Commitment, Decision, Job, Peers
from matching.params import MatchParams
from matching.replay import replay

NOW = 1_750_000_000
HOUR = 3600
ON = MatchParams(chain_s=300.0)
OFF = MatchParams(chain_s=0.0)
JOB = Job(
    order_id=50,
    lat=22.53,
    lng=114.02,
    earliest_start_s=NOW,
    latest_start_s=NOW + HOUR,
    duration_s=HOUR,
    customer_id=900,
    created_s=NOW,
)
FREE = Candidate(
    worker_id=1,
    lat=22.60,
    lng=114.02,
    fix_age_s=5.0,
    available=((NOW - HOUR, NOW + 10 * HOUR),),
)
BUSY = Candidate(
    worker_id=2,
    lat=22.531,
    lng=114.021,
    fix_age_s=5.0,
    available=((NOW - HOUR, NOW + 10 * HOUR),),
    state="busy",
    chain=Chain(order_id=40, ends_s=NOW + 120),
)


def test_chaining_off_keeps_a_busy_worker_out_and_says_so() -> None:
    """With ``chain_s`` 0 (off; 300 by default) a busy worker is not available, chained or not."""
    assert why_not(JOB, BUSY, NOW, OFF) == "not available: busy (order 40; chaining off)"
    plain = msgspec.structs.replace(BUSY, chain=None)
    assert why_not(JOB, plain, NOW, ON) == "not available: busy"


@pytest.mark.parametrize(
    ("ends_in_s", "reason"),
    [
        (120, None),
        (300, None),
        (0, None),
        (-200, None),
        (420, "busy: order 40 ends in 7 min, beyond chaining's 5 min"),
        (-900, "busy: order 40 overran its expected end by 15 min"),
    ],
)
def test_a_busy_worker_is_a_candidate_only_when_the_job_ends_within_chain_s(
    ends_in_s: int, reason: str | None
) -> None:
    """Chaining on: the job must end within ``chain_s``, or have overrun by less than it."""
    c = msgspec.structs.replace(BUSY, chain=Chain(40, NOW + ends_in_s))
    assert why_not(JOB, c, NOW, ON) == reason


def test_a_chained_eta_is_the_time_left_plus_the_road() -> None:
    """The ETA counts from now: what is left of the current job, then the road from it."""
    assert chained_eta_s(BUSY, 60.0, NOW) == 180.0
    assert chained_eta_s(BUSY, 60.0, NOW + 200) == 60.0  # past its expected end: no time left
    assert chained_eta_s(FREE, 60.0, NOW) == 60.0
    assert chain_note(BUSY, NOW) == "chained: after order 40, which ends in 2.0 min"
    assert chain_note(FREE, NOW) is None


def test_the_time_left_can_make_a_chained_worker_too_late() -> None:
    """A job whose latest start falls before the chained worker could get there is refused."""
    tight = replace(JOB, latest_start_s=NOW + 150)
    eta = chained_eta_s(BUSY, 60.0, NOW)
    assert why_not_eta(tight, BUSY, eta, NOW, ON) is not None
    assert (why_not_eta(tight, BUSY, eta, NOW, ON) or "").startswith("too late")
    assert why_not_eta(JOB, BUSY, eta, NOW, ON) is None


def test_a_planned_job_counts_from_the_chained_start() -> None:
    """The next planned job must still be reached after the current job, the road and this one."""
    due = NOW + 120 + 60 + HOUR + 600  # the margin, nothing for the trip back: too late
    c = msgspec.structs.replace(BUSY, commitment=Commitment(77, 22.531, 114.021, due))
    eta = chained_eta_s(c, 60.0, NOW)
    why = why_not_eta(JOB, c, eta, NOW, ON) or ""
    assert why.startswith("planned job: would be late for planned order 77")
    early = msgspec.structs.replace(c, commitment=Commitment(77, 22.531, 114.021, due + 900))
    assert why_not_eta(JOB, early, eta, NOW, ON) is None


def test_batch_prefers_a_worker_ending_soon_next_door_over_a_free_one_far_away() -> None:
    """The chained worker (2 min left + 1 min road) wins over a free one 15 min away, and the
    decision keeps the chain and the total ETA."""
    cands = [FREE, BUSY]
    etas = [{1: 900.0, 2: chained_eta_s(BUSY, 60.0, NOW)}]
    (d,) = decide_batch([JOB], [cands], etas, NOW, ON)
    assert d.worker_id == 2
    chosen = d.chosen
    assert chosen is not None
    assert chosen.eta_s == 180.0
    assert chosen.candidate.chain == Chain(40, NOW + 120)
    (off,) = decide_batch([JOB], [cands], etas, NOW, OFF)
    assert off.worker_id == 1
    assert next(c for c in off.candidates if c.worker_id == 2).why_not == (
        "not available: busy (order 40; chaining off)"
    )


def test_a_stored_chained_decision_reads_back_and_replays_the_same() -> None:
    """The chain is stored with the candidate; replaying the stored decision decides the same."""
    etas = [{1: 900.0, 2: chained_eta_s(BUSY, 60.0, NOW)}]
    (d,) = decide_batch([JOB], [[FREE, BUSY]], etas, NOW, ON)
    stored = Decision.from_json(d.to_json())
    assert stored == d.for_storage()
    assert [c.candidate.chain for c in stored.candidates] == [Chain(40, NOW + 120), None]
    (again,) = replay([stored], ON)
    assert again.worker_id == 2
    assert again.to_json() == stored.to_json()


@pytest.mark.parametrize("ends_in_s", [-400, -100, 0, 120, 300, 301, 1000])
def test_the_fast_assessment_agrees_with_the_rules_for_chained_candidates(ends_in_s: int) -> None:
    """``assess_all`` (inlined checks) gives the same records as ``assess_pair``."""
    c = msgspec.structs.replace(BUSY, chain=Chain(40, NOW + ends_in_s))
    eta = chained_eta_s(c, 60.0, NOW)
    peers = Peers(jobs_today=0.0, earnings_today_minor=0.0, pressure=1.0)
    for params in (ON, OFF):
        (assessed,), _ = assess_all([JOB], [[c]], [[eta]], NOW, params, peers)
        assert assessed.records == [assess_pair(JOB, c, eta, NOW, peers, params)]


def test_chain_s_must_be_a_finite_number_at_least_zero() -> None:
    """A negative or infinite ``chain_s`` is refused, naming it."""
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="chain_s"):
            MatchParams(chain_s=bad)
