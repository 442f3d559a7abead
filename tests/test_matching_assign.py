"""matching.assign: batch assignment vs. the greedy baseline, pins, decisions and replay."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

import msgspec
import orjson
import pytest

from doorstep.errors import InvalidInput
from matching.assign import decide, decide_batch, decide_greedy
from matching.errors import MatchingError
from matching.model import Candidate, Decision, Job, Peers, WorkerState
from matching.params import MatchParams
from matching.replay import replay

Decide = Callable[
    [Sequence[Job], Sequence[Sequence[Candidate]], Any, float, MatchParams, Peers | None],
    list[Decision],
]

PARAMS = MatchParams()
NOW = 1_750_000_000
HOUR = 3600
MIN = 60.0
PEERS = Peers(jobs_today=2.0, earnings_today_minor=30_000.0)
BOTH: list[Decide] = [decide_batch, decide_greedy]


def job(order_id: int, **changes: Any) -> Job:
    """An instant cleaning job placed ``order_id`` seconds after NOW (older = lower id)."""
    base = Job(
        order_id=order_id,
        lat=22.53,
        lng=114.02,
        created_s=NOW + order_id,
        earliest_start_s=NOW,
        latest_start_s=NOW + HOUR,
        duration_s=2 * HOUR,
        customer_id=900 + order_id,
        required_skills=frozenset({"cleaning"}),
    )
    return replace(base, **changes)


def worker(worker_id: int, **changes: Any) -> Candidate:
    """An available cleaner, free all day, at the peers' medians."""
    base = Candidate(
        worker_id=worker_id,
        lat=22.531,
        lng=114.021,
        fix_age_s=5.0,
        skills=frozenset({"cleaning"}),
        rating_sum=46.0,
        rating_count=10,
        jobs_today=2,
        earnings_today_minor=30_000,
        available=((NOW - HOUR, NOW + 12 * HOUR),),
    )
    return msgspec.structs.replace(base, **changes)


def assigned(decisions: Sequence[Decision]) -> dict[int, int | None]:
    """order id -> worker id (or None)."""
    return {d.order_id: d.worker_id for d in decisions}


def served_and_total(decisions: Sequence[Decision]) -> tuple[int, float]:
    """How many jobs got a worker, and the sum of their costs."""
    chosen = [d.chosen for d in decisions if d.worker_id is not None]
    return len(chosen), sum(c.breakdown.total for c in chosen if c and c.breakdown)


# The hand-checkable case: ETA minutes, rows = jobs by age, columns = workers 1..3.
#        w1  w2  w3
#   A     1   2  30      greedy: A→w1 (1), B→w2 (30, tie with w3: lower id), C→w3 (4) = 35
#   B     2  30  30      batch:  A→w2 (2), B→w1 (2),                          C→w3 (4) = 8
#   C    30   3   4
MYOPIC_ETA_MIN = [[1, 2, 30], [2, 30, 30], [30, 3, 4]]


def myopic_case() -> tuple[list[Job], list[list[Candidate]], list[list[float]]]:
    """Three jobs, three identical workers, ETAs from MYOPIC_ETA_MIN."""
    jobs = [job(1), job(2), job(3)]
    workers = [worker(1), worker(2), worker(3)]
    etas = [[m * MIN for m in row] for row in MYOPIC_ETA_MIN]
    return jobs, [workers] * 3, etas


def test_batch_beats_myopic_greedy() -> None:
    """On the 3×3 case greedy's first pick forces a 30-minute trip; the batch does not."""
    jobs, cands, etas = myopic_case()
    greedy = decide_greedy(jobs, cands, etas, NOW, PARAMS, PEERS)
    batch = decide_batch(jobs, cands, etas, NOW, PARAMS, PEERS)
    assert assigned(greedy) == {1: 1, 2: 2, 3: 3}
    assert assigned(batch) == {1: 2, 2: 1, 3: 3}
    assert served_and_total(greedy)[1] == pytest.approx(35)
    assert served_and_total(batch)[1] == pytest.approx(8)


def test_batch_serves_more_jobs_when_greedy_strands_one() -> None:
    """If B can only use w1 (the rest too far), greedy strands B; the batch serves all."""
    jobs, cands, etas = myopic_case()
    etas[1] = [2 * MIN, 99 * MIN, 99 * MIN]
    greedy = decide_greedy(jobs, cands, etas, NOW, PARAMS, PEERS)
    batch = decide_batch(jobs, cands, etas, NOW, PARAMS, PEERS)
    assert assigned(greedy)[2] is None
    assert greedy[1].reason == "all 1 feasible workers went to other orders of this batch"
    assert assigned(batch) == {1: 2, 2: 1, 3: 3}


def random_case(
    seed: int, max_jobs: int = 4, max_workers: int = 5
) -> tuple[list[Job], list[list[Candidate]], list[list[float]]]:
    """A small random batch: random candidate lists, ETAs (some too far), skills, ratings,
    teams, repeat customers and workload."""
    rng = random.Random(seed)
    workers = [
        worker(
            w,
            skills=frozenset(s for s in ("cleaning", "nanny") if rng.random() < 0.8),
            rating_sum=float(rng.randint(0, 20) * 4.5),
            rating_count=rng.randint(20, 25),
            jobs_today=rng.randint(0, 5),
            earnings_today_minor=rng.randint(0, 60_000),
            team_id=rng.choice([None, 1, 2]),
            served_customer_ids=frozenset(rng.sample(range(900, 910), 2)),
            fix_age_s=rng.choice([5.0, 5.0, 5.0, 90.0]),
        )
        for w in range(1, rng.randint(1, max_workers) + 1)
    ]
    jobs = [
        job(o, preferred_team_id=rng.choice([None, 1, 2]), created_s=NOW + rng.randint(0, 3))
        for o in range(1, rng.randint(1, max_jobs) + 1)
    ]
    cands = [rng.sample(workers, rng.randint(0, len(workers))) for _ in jobs]
    etas = [[rng.uniform(1, 50) * MIN for _ in row] for row in cands]
    return jobs, cands, etas


def brute_force(decisions: Sequence[Decision]) -> tuple[int, float]:
    """The best (most jobs served, then least total cost) over every assignment."""
    options = [
        [(c.worker_id, c.breakdown.total) for c in d.candidates if c.breakdown] for d in decisions
    ]
    best = (0, 0.0)

    def walk(j: int, used: frozenset[int], served: int, cost: float) -> None:
        nonlocal best
        if j == len(options):
            if (-served, cost) < (-best[0], best[1]):
                best = (served, cost)
            return
        walk(j + 1, used, served, cost)
        for w, c in options[j]:
            if w not in used:
                walk(j + 1, used | {w}, served + 1, cost + c)

    walk(0, frozenset(), 0, 0.0)
    return best


@pytest.mark.parametrize("seed", range(60))
def test_batch_equals_brute_force(seed: int) -> None:
    """On small random batches the assignment is as good as trying every permutation."""
    jobs, cands, etas = random_case(seed)
    batch = decide_batch(jobs, cands, etas, NOW, PARAMS, PEERS)
    served, cost = served_and_total(batch)
    best_served, best_cost = brute_force(batch)
    assert served == best_served
    assert cost == pytest.approx(best_cost, abs=1e-9)
    greedy_served, greedy_cost = served_and_total(
        decide_greedy(jobs, cands, etas, NOW, PARAMS, PEERS)
    )
    assert (-served, cost) <= (-greedy_served, greedy_cost + 1e-9)


@pytest.mark.parametrize("policy", BOTH)
@pytest.mark.parametrize("seed", range(30))
def test_infeasible_pairs_are_never_assigned(policy: Decide, seed: int) -> None:
    """Every chosen worker is a feasible candidate of the job, and takes one job at most."""
    jobs, cands, etas = random_case(seed, max_jobs=6, max_workers=4)
    decisions = policy(jobs, cands, etas, NOW, PARAMS, PEERS)
    chosen = [d.worker_id for d in decisions if d.worker_id is not None]
    assert len(chosen) == len(set(chosen))
    for d in decisions:
        if d.worker_id is not None:
            record = d.chosen
            assert record is not None
            assert record.feasible
            assert record.why_not is None


@pytest.mark.parametrize("policy", BOTH)
def test_no_feasible_candidate_gives_a_reason(policy: Decide) -> None:
    """A job whose candidates all fail gets no worker and a reason counting the failures."""
    jobs = [job(1, required_skills=frozenset({"plumbing"})), job(2)]
    cands = [[worker(1), worker(2), worker(3, fix_age_s=300.0)], []]
    decisions = policy(jobs, cands, [[MIN] * 3, []], NOW, PARAMS, PEERS)
    assert decisions[0].worker_id is None
    assert (
        decisions[0].reason
        == "no feasible candidate among 3: missing skill ×2, stale location fix ×1"
    )
    assert [c.why_not for c in decisions[0].candidates] == [
        "missing skill: 'plumbing'",
        "missing skill: 'plumbing'",
        "stale location fix: 300 s old, limit 60 s",
    ]
    assert decisions[1].reason == "no candidates nearby"


@pytest.mark.parametrize("policy", BOTH)
def test_pinned_job_gets_the_pinned_worker(policy: Decide) -> None:
    """A pin wins over the score: the pinned (farther) worker is reserved for that job."""
    jobs = [job(1), job(2, pinned_worker_id=1)]
    cands = [[worker(1), worker(2)], [worker(1), worker(2)]]
    etas = [[1 * MIN, 20 * MIN], [30 * MIN, 1 * MIN]]
    decisions = policy(jobs, cands, etas, NOW, PARAMS, PEERS)
    assert assigned(decisions) == {1: 2, 2: 1}
    pinned = decisions[1]
    assert [c.why_not for c in pinned.candidates if not c.feasible] == [
        "pinned to another worker: 1"
    ]


@pytest.mark.parametrize(
    ("pins", "cands", "reasons"),
    [
        ([1, 1], [[worker(1)], [worker(1)]], [None, "pinned worker 1 is pinned to older order 1"]),
        ([5], [[worker(1)]], ["pinned worker 5 is not among the candidates"]),
        (
            [1],
            [[worker(1, state="busy"), worker(2)]],
            ["pinned worker 1 cannot take it: not available: busy"],
        ),
    ],
)
def test_pins_that_cannot_be_honoured(
    pins: list[int], cands: list[list[Candidate]], reasons: list[str | None]
) -> None:
    """A pin is never overridden by the engine: the job waits, with the reason why."""
    jobs = [job(i + 1, pinned_worker_id=p) for i, p in enumerate(pins)]
    etas = [[MIN] * len(row) for row in cands]
    decisions = decide_batch(jobs, cands, etas, NOW, PARAMS, PEERS)
    assert [d.reason for d in decisions] == reasons


def test_eta_callback_is_asked_only_for_survivors() -> None:
    """An ETA callback is called once per candidate that passes the state checks."""
    asked: list[tuple[int, int]] = []

    def eta(j: int, c: Candidate) -> float:
        asked.append((j, c.worker_id))
        return 5 * MIN

    cands = [[worker(1), worker(2, state="busy"), worker(3, skills=frozenset())]]
    decisions = decide_batch([job(1)], cands, eta, NOW, PARAMS, PEERS)
    assert asked == [(0, 1)]
    assert decisions[0].worker_id == 1
    assert [c.eta_s for c in decisions[0].candidates] == [300.0, None, None]


def test_candidates_are_listed_best_first() -> None:
    """A decision lists feasible candidates by total (then id), then infeasible ones by id."""
    cands = [[worker(4), worker(3, state="busy"), worker(2), worker(1, fix_age_s=99.0)]]
    decisions = decide_batch([job(1)], cands, [[9 * MIN, MIN, 2 * MIN, MIN]], NOW, PARAMS, PEERS)
    assert [c.worker_id for c in decisions[0].candidates] == [2, 4, 1, 3]


@pytest.mark.parametrize("policy", BOTH)
@pytest.mark.parametrize("seed", range(10))
def test_deterministic_whatever_the_input_order(policy: Decide, seed: int) -> None:
    """Shuffling jobs and candidate lists changes nothing but the output order."""
    jobs, cands, etas = random_case(seed, max_jobs=6, max_workers=6)
    first = policy(jobs, cands, etas, NOW, PARAMS, PEERS)
    rng = random.Random(seed)
    order = rng.sample(range(len(jobs)), len(jobs))
    shuffled_cands: list[list[Candidate]] = []
    shuffled_etas: list[list[float]] = []
    for j in order:
        perm = rng.sample(range(len(cands[j])), len(cands[j]))
        shuffled_cands.append([cands[j][i] for i in perm])
        shuffled_etas.append([etas[j][i] for i in perm])
    again = policy([jobs[j] for j in order], shuffled_cands, shuffled_etas, NOW, PARAMS, PEERS)
    assert {d.order_id: d.to_json() for d in again} == {d.order_id: d.to_json() for d in first}


def mixed_batch() -> list[Decision]:
    """A batch with an assignment, a pin, a job nobody can take and certificates."""
    jobs = [
        job(1, required_certificates=frozenset({"housekeeping"}), preferred_team_id=2),
        job(2, pinned_worker_id=3),
        job(3, required_skills=frozenset({"plumbing"})),
    ]
    certified = {"housekeeping": date(2030, 1, 1), "nanny": date(2024, 1, 1)}
    cands = [
        [
            worker(1, certificates=certified, team_id=2),
            worker(2),
            worker(4, certificates=certified),
        ],
        [worker(3), worker(1, certificates=certified)],
        [worker(2, served_customer_ids=frozenset({903, 1, 2}))],
    ]
    etas = [[5 * MIN, 3 * MIN, 9 * MIN], [12 * MIN, 2 * MIN], [4 * MIN]]
    return decide_batch(jobs, cands, etas, NOW, PARAMS, PEERS)


def test_decision_json_round_trip() -> None:
    """from_json(to_json) gives back the decision as stored, and equal ones equal bytes."""
    for d in mixed_batch():
        data = d.to_json()
        back = Decision.from_json(data)
        assert back == d.for_storage()
        assert back.for_storage() == back
        assert back.to_json() == data
        assert Decision.from_json(data.decode()) == back


def test_stored_candidates_keep_what_mattered() -> None:
    """Stored candidates keep only the job's skills, certificates and this customer."""
    stored = mixed_batch()[2].for_storage()
    assert stored.candidates[0].candidate.served_customer_ids == frozenset({903})
    assert stored.candidates[0].candidate.skills == frozenset()
    assert mixed_batch()[2].candidates[0].candidate.served_customer_ids == {903, 1, 2}


def test_decision_keeps_what_the_dispatcher_needs() -> None:
    """A stored decision shows each candidate's reason or term breakdown."""
    first = mixed_batch()[0]
    assert first.worker_id == 1
    chosen = first.chosen
    assert chosen is not None
    assert chosen.breakdown is not None
    assert chosen.breakdown.as_dict()["team"] == (-1.0, -PARAMS.weight_team)
    assert dict(chosen.candidate.relevant_to(first.job).certificates) == {
        "housekeeping": date(2030, 1, 1)
    }
    assert [c.why_not for c in first.candidates if not c.feasible] == [
        "no verified certificate: 'housekeeping'"
    ]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda s: s.replace('"policy":"batch",', "", 1), "policy"),
        (lambda s: s.replace('"terms":["eta",', '"terms":["distance",', 1), "decision.terms"),
        (lambda s: s.replace('"worker_id":1,', '"worker_id":"one",', 1), "worker_id"),
    ],
)
def test_decision_json_errors_name_the_field(edit: Callable[[str], str], field: str) -> None:
    """Stored JSON that is wrong is rejected with the field at fault."""
    text = edit(mixed_batch()[0].to_json().decode())
    with pytest.raises(InvalidInput) as info:
        Decision.from_json(text)
    assert info.value.field == field


@pytest.mark.parametrize("params", [PARAMS, replace(PARAMS, policy="greedy")])
def test_replay_reproduces_the_batch(params: MatchParams) -> None:
    """Re-deciding from the stored JSON alone reproduces every decision exactly."""
    jobs, cands, etas = random_case(11, max_jobs=6, max_workers=6)
    original = decide(jobs, cands, etas, NOW, params, PEERS)
    stored = [Decision.from_json(d.to_json()) for d in original]
    assert replay(stored, params) == [d.for_storage() for d in original]
    assert replay(original, params) == original
    assert replay(mixed_batch(), PARAMS) == mixed_batch()


def test_replay_with_other_weights_answers_what_if() -> None:
    """Replaying with other weights re-scores the stored candidates."""
    jobs = [job(1, preferred_team_id=7)]
    cands = [[worker(1), worker(2, team_id=7)]]
    original = decide_batch(jobs, cands, [[MIN, 20 * MIN]], NOW, PARAMS, PEERS)
    assert original[0].worker_id == 1
    what_if = replay(original, replace(PARAMS, weight_team=100.0))
    assert what_if[0].worker_id == 2


def test_replay_needs_one_batch() -> None:
    """Decisions made at different times cannot be replayed as one batch."""
    a = decide_batch([job(1)], [[worker(1)]], [[MIN]], NOW, PARAMS, PEERS)
    b = decide_batch([job(2)], [[worker(1)]], [[MIN]], NOW + 5, PARAMS, PEERS)
    with pytest.raises(MatchingError):
        replay([*a, *b], PARAMS)


@pytest.mark.parametrize(
    ("jobs", "cands", "etas", "field"),
    [
        ([job(1)], [[worker(1)]], [[MIN, MIN]], "etas[0]"),
        ([job(1)], [[worker(1), worker(1)]], [[MIN, MIN]], "candidates[0][1]"),
        ([job(1), job(1)], [[], []], [[], []], "jobs"),
        ([job(1)], [], [], "candidates"),
    ],
)
def test_bad_batches_name_the_field(
    jobs: list[Job], cands: list[list[Candidate]], etas: list[list[float]], field: str
) -> None:
    """Mismatched ETAs, repeated workers or orders are errors naming the input."""
    with pytest.raises(MatchingError) as info:
        decide_batch(jobs, cands, etas, NOW, PARAMS, PEERS)
    assert info.value.field == field


def test_eta_rows_may_map_worker_ids() -> None:
    """An ETA row may be a mapping worker id -> seconds; a missing worker has no ETA."""
    jobs, cands, etas = myopic_case()
    by_worker = [
        {c.worker_id: e for c, e in zip(row, etas_row, strict=True)}
        for row, etas_row in zip(cands, etas, strict=True)
    ]
    assert decide_batch(jobs, cands, by_worker, NOW, PARAMS, PEERS) == decide_batch(
        jobs, cands, etas, NOW, PARAMS, PEERS
    )
    decisions = decide_batch([job(1)], [[worker(1), worker(2)]], [{2: MIN}], NOW, PARAMS, PEERS)
    assert decisions[0].worker_id == 2
    assert [c.why_not for c in decisions[0].candidates] == [None, "no road ETA"]


def test_peers_default_to_the_candidates_medians() -> None:
    """Without city medians, fairness compares against the medians over the candidates."""
    cands = [[worker(1, jobs_today=0), worker(2, jobs_today=4), worker(3, jobs_today=8)]]
    decisions = decide_batch([job(1)], cands, [[MIN, MIN, MIN]], NOW, PARAMS)
    assert decisions[0].peers.jobs_today == 4.0
    assert decisions[0].worker_id == 1


@pytest.mark.parametrize(
    ("created", "winner"),
    [((NOW + 5, NOW + 1), 2), ((NOW + 1, NOW + 5), 1), ((0, 0), 1)],
)
def test_greedy_serves_the_oldest_job_first(created: tuple[int, int], winner: int) -> None:
    """Greedy goes by created_s, then order id (created_s left at 0: order ids decide)."""
    jobs = [job(1, created_s=created[0]), job(2, created_s=created[1])]
    decisions = decide_greedy(jobs, [[worker(1)], [worker(1)]], [[MIN], [MIN]], NOW, PARAMS, PEERS)
    assert {d.order_id for d in decisions if d.worker_id == 1} == {winner}


AVAILABLE: WorkerState = "available"
STATES: list[WorkerState] = [AVAILABLE] * 12 + ["busy", "offline"]


def _random_batch(
    rng: random.Random,
) -> tuple[list[Job], list[list[Candidate]], list[list[float]], Peers | None]:
    """Jobs and candidates that hit every rule of why_not, why_not_eta and every score
    term: exclusions, pins, states, stale and missing fixes, skills, exams, certificates,
    schedules of several intervals, planned jobs, and ETAs that are NaN, inf or negative."""
    skills = ("cleaning", "plumbing", "nanny")
    kinds = ("housekeeping", "childcare")
    workers = []
    for w in range(1, 13):
        held = frozenset(s for s in skills if rng.random() < 0.8)
        free = []
        start = NOW - rng.randint(0, 2) * HOUR
        for _ in range(rng.randint(0, 3)):
            end = start + rng.randint(1, 5) * HOUR + rng.choice([0, 600, 1800])
            free.append((start, end))
            start = end + rng.choice([0, 300, HOUR])
        commitment = None
        if rng.random() < 0.2:
            from matching.model import Commitment

            commitment = Commitment(
                rng.choice([1, 99]), 22.53, 114.0, NOW + rng.randint(1, 6) * HOUR
            )
        count = rng.randint(0, 30)
        workers.append(
            Candidate(
                worker_id=w,
                lat=22.531,
                lng=114.021,
                fix_age_s=rng.choice([5.0] * 6 + [60.0, 61.0, float("inf"), rng.uniform(0, 90)]),
                skills=held,
                certificates={
                    k: date(2025, 6, rng.choice([14, 15, 16, 20]))
                    for k in kinds
                    if rng.random() < 0.8
                },
                rating_sum=count * rng.uniform(0, 5),
                rating_count=count,
                jobs_today=rng.randint(0, 6),
                earnings_today_minor=rng.randint(0, 80_000),
                available=tuple(free),
                team_id=rng.choice([None, 1, 2]),
                served_customer_ids=frozenset(rng.sample(range(901, 910), 2)),
                state=rng.choice(STATES),
                untrained=frozenset(s for s in held if rng.random() < 0.15),
                commitment=commitment,
                priority=rng.random() < 0.2,
            )
        )
    jobs, lists, etas = [], [], []
    for o in range(1, 7):
        pinned = rng.choice([None] * 9 + [rng.randint(1, 12)])
        earliest = NOW + rng.choice([0, 0, HOUR])
        excluded = frozenset(w for w in range(1, 13) if rng.random() < 0.05 and w != pinned)
        jobs.append(
            job(
                o,
                customer_id=rng.randint(901, 909),
                required_skills=frozenset(rng.sample(skills, rng.randint(0, 2))),
                required_certificates=frozenset(k for k in kinds if rng.random() < 0.3),
                earliest_start_s=earliest,
                latest_start_s=earliest + rng.choice([600, 1800, HOUR, 2 * HOUR]),
                duration_s=rng.choice([HOUR, 2 * HOUR, 3 * HOUR]),
                preferred_team_id=rng.choice([None, 1]),
                pinned_worker_id=pinned,
                excluded_worker_ids=excluded,
            )
        )
        chosen = rng.sample(workers, rng.randint(0, 8))
        lists.append(chosen)
        etas.append(
            [
                rng.choice(
                    [rng.uniform(0, 3000)] * 6 + [0.0, float("nan"), float("inf"), -5.0, 2700.0]
                )
                for _ in chosen
            ]
        )
    peers = rng.choice([None, PEERS, Peers(0.0, 0.0, pressure=0.5)])
    return jobs, lists, etas, peers


@pytest.mark.parametrize("seed", range(200))
def test_batch_assessment_equals_the_rules_pair_by_pair(seed: int) -> None:
    """assess_all's inlined checks and score give exactly assess_pair's records (the rules
    as written, then the job's rotation term by ``rotate``): same reasons, ETAs and
    breakdowns to the last bit, whatever form the ETAs take, rotation on or off."""
    import numpy as np

    from matching.assess import assess_all, assess_job_by_the_rules

    rng = random.Random(seed)
    jobs, lists, etas, peers = _random_batch(rng)
    params = rng.choice(
        [
            PARAMS,
            replace(PARAMS, load_aware=False, fresh_fix_s=30.0),
            replace(PARAMS, rotation_slack_s=0.0),
        ]
    )
    _, used = assess_all(jobs, lists, etas, NOW, params, peers)
    forms: list[Any] = [
        etas,
        [np.array(row) for row in etas],
        [
            {c.worker_id: e for c, e in zip(cl, row, strict=True)}
            for cl, row in zip(lists, etas, strict=True)
        ],
        lambda j, c: etas[j][[x.worker_id for x in lists[j]].index(c.worker_id)],
    ]
    for form in forms:
        assessed, _ = assess_all(jobs, lists, form, NOW, params, peers)
        for j, (jb, cl) in enumerate(zip(jobs, lists, strict=True)):
            ref = assess_job_by_the_rules(jb, cl, etas[j], NOW, used, params)
            assert assessed[j].records == ref.records
            assert assessed[j].feasible == ref.feasible
            assert assessed[j].costs == ref.costs


def test_all_else_equal_the_prioritised_worker_wins() -> None:
    """Batch policy: two workers alike in all but dispatch priority, the prioritised one (the higher id, which loses a tie) is chosen, its priority term -1 weighted -weight_priority (greedy, the nearest-idle baseline, uses no terms)."""
    params = PARAMS
    plain, prioritised = worker(1), worker(2, priority=True)
    (d,) = decide([job(1)], [[plain, prioritised]], [[5 * MIN, 5 * MIN]], NOW, params, PEERS)
    assert d.worker_id == 2
    assert d.chosen is not None
    assert d.chosen.breakdown is not None
    assert d.chosen.breakdown.as_dict()["priority"] == (-1.0, -PARAMS.weight_priority)
    (tie,) = decide([job(1)], [[plain, worker(2)]], [[5 * MIN, 5 * MIN]], NOW, params, PEERS)
    assert tie.worker_id == 1
    # Small: a worker 3 minutes nearer still wins over the prioritised one.
    (near,) = decide([job(1)], [[plain, prioritised]], [[2 * MIN, 5 * MIN]], NOW, params, PEERS)
    assert near.worker_id == 1


def test_a_decision_stored_before_the_priority_term_reads_back_and_replays() -> None:
    """JSON stored with the six earlier terms (no priority field on candidates) reads back with priority 0 raw and weighted, the same totals, and replays to the same outcome."""
    for d in mixed_batch():
        doc = orjson.loads(d.to_json())
        doc["terms"] = doc["terms"][:6]  # before priority (and rotation, added after it)
        for c in doc["candidates"]:
            del c["candidate"]["priority"]
            if c["breakdown"] is not None:
                c["breakdown"]["raw"] = c["breakdown"]["raw"][:6]
                c["breakdown"]["weighted"] = c["breakdown"]["weighted"][:6]
        old = Decision.from_json(orjson.dumps(doc))
        assert old == d.for_storage()
        for c in old.candidates:
            if c.breakdown is not None:
                assert c.breakdown.as_dict()["priority"] == (0.0, 0.0)
    stored = [Decision.from_json(d.to_json()) for d in mixed_batch()]
    assert replay(stored, PARAMS) == [d.for_storage() for d in mixed_batch()]
