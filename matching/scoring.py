"""The cost of giving a job to a feasible worker, term by term.

Sign convention: every term's *raw* value is oriented so that larger is worse; a
bonus is a negative raw value. Its contribution is ``weight × raw`` (weights are
>= 0, from :class:`~matching.params.MatchParams`) and the total is the sum: **lower
total = better match**. With the default weights one point is one minute of ETA.

Load-aware (issue 20): the rating weight is multiplied by :func:`load_factor` (0 when
workers are idle and orders few, 1 when orders queue) and the fairness weight by
``fairness_floor + (1 - fairness_floor) × load_factor``, so at ordinary load the match
is mostly by ETA while a little fairness still spreads the work.

Raw values:

- ``eta``: road ETA in minutes.
- ``rating``: prior mean minus the Bayesian rating (stars). A worker with no ratings
  scores exactly 0: neither punished nor boosted; a few perfect ratings move the
  estimate only a little.
- ``fairness``: how far the worker's jobs and earnings today sit above the city's
  medians, each relative to the median and clipped to [-1, 1], averaged. Fewer
  jobs or less money than the peers: negative, a bonus.
- ``schedule``: free time the job would fragment, in units of ``min_useful_gap_s``.
  Of the free interval holding the job, the part before it (after travel) and the
  part after it each count if shorter than ``min_useful_gap_s`` (too short for
  another job) but not empty; a job that fits snugly or leaves long blocks scores 0.
- ``affinity``: -1 if the worker served this customer before, else 0.
- ``team``: -1 if the job prefers a merchant team and the worker is in it, else 0.
- ``priority``: -1 if the worker has dispatch priority (a quality reward in force), else
  0. Its weight is small (2 points by default): it settles near-ties, it does not send a
  prioritised worker across the city.
- ``rotation`` (轮派): jobs today above the fewest among the job's candidates whose ETA
  is within ``rotation_slack_s`` of the job's best, at most ``rotation_cap``; each such
  job weighs ``weight_eta × rotation_slack_s / 60`` points (one slack of ETA). It depends
  on the job's other candidates, so :func:`score` (one pair) leaves it at 0 and
  :func:`matching.assess.rotate` sets it for the whole job.
"""

from __future__ import annotations

from collections.abc import Iterable
from statistics import median

from matching.model import Breakdown, Candidate, Job, Peers
from matching.params import MatchParams

JOBS_FLOOR = 1.0  # fairness: a median below one job counts as one
EARNINGS_FLOOR_MINOR = 10_000.0  # fairness: a median below 100 yuan counts as 100 yuan


def bayes_rating(
    rating_sum: float, rating_count: int, prior_mean: float, prior_weight: float
) -> float:
    """The mean rating shrunk towards ``prior_mean`` as if it had ``prior_weight`` more
    ratings of that value."""
    return (rating_sum + prior_mean * prior_weight) / (rating_count + prior_weight)


def peers_of(
    candidates: Iterable[Candidate], n_jobs: int | None = None, rotation_s: float | None = None
) -> Peers:
    """The medians of jobs and earnings today over ``candidates`` (zero if none), with
    ``n_jobs`` the pressure: jobs per candidate (the free workers of the batch), and the
    rotation window to record (``MatchParams.rotation_slack_s``)."""
    jobs: list[float] = []
    earnings: list[float] = []
    for c in candidates:
        jobs.append(c.jobs_today)
        earnings.append(c.earnings_today_minor)
    pressure = None if n_jobs is None else n_jobs / max(1, len(jobs))
    if not jobs:
        return Peers(pressure=pressure, rotation_s=rotation_s)
    return Peers(
        jobs_today=float(median(jobs)),
        earnings_today_minor=float(median(earnings)),
        pressure=pressure,
        rotation_s=rotation_s,
    )


def load_factor(peers: Peers, params: MatchParams) -> float:
    """How much of the fairness and rating weights applies, in [0, 1]: 0 when orders are
    few and workers idle (the batch's jobs per free worker near 0), 1 from
    ``load_full_pressure`` jobs per free worker on (orders queue). 1 with
    ``load_aware`` off, or when the pressure is not known (decisions stored before it).

    Why: at ordinary load, every point of fairness or rating is paid for in ETA, i.e. in
    customer wait, and the simulator measured batch 18-24 % slower than nearest-idle at
    55-72 % utilization (docs/simulation.md); when orders queue, every free worker gets
    a job anyway and the per-worker terms spread the work without costing wait.
    """
    if not params.load_aware or peers.pressure is None:
        return 1.0
    return max(0.0, min(1.0, peers.pressure / params.load_full_pressure))


def rating_term(cand: Candidate, params: MatchParams) -> float:
    """Prior mean minus the Bayesian rating, in stars (negative: better than the prior)."""
    mean = params.rating_prior_mean
    return mean - bayes_rating(cand.rating_sum, cand.rating_count, mean, params.rating_prior_weight)


def _relative(value: float, median_value: float, floor: float) -> float:
    return max(-1.0, min(1.0, (value - median_value) / max(median_value, floor)))


def fairness_term(cand: Candidate, peers: Peers) -> float:
    """Jobs and earnings today relative to the peers' medians, averaged, in [-1, 1]."""
    jobs = _relative(cand.jobs_today, peers.jobs_today, JOBS_FLOOR)
    money = _relative(cand.earnings_today_minor, peers.earnings_today_minor, EARNINGS_FLOOR_MINOR)
    return (jobs + money) / 2


def schedule_term(
    job: Job, cand: Candidate, eta_s: float, now_s: float, params: MatchParams
) -> float:
    """Fragmented free time around the job, in units of ``min_useful_gap_s`` ([0, 2]).

    2 (the worst) if no free interval holds the job (feasibility rules that out).
    """
    start_s = max(float(job.earliest_start_s), now_s + eta_s)  # feasibility.earliest_start_s
    end_s = start_s + job.duration_s
    gap = params.min_useful_gap_s
    for a, b in cand.available:
        if a <= start_s and end_s <= b:
            before = max(0.0, start_s - eta_s - max(float(a), now_s))
            after = b - end_s
            return sum(p for p in (before, after) if 0 < p < gap) / gap
    return 2.0


def affinity_term(job: Job, cand: Candidate) -> float:
    """-1 if ``cand`` served ``job``'s customer before, else 0."""
    return -1.0 if job.customer_id in cand.served_customer_ids else 0.0


def team_term(job: Job, cand: Candidate) -> float:
    """-1 if ``job`` prefers ``cand``'s team, else 0."""
    preferred = job.preferred_team_id
    return -1.0 if preferred is not None and preferred == cand.team_id else 0.0


def priority_term(cand: Candidate) -> float:
    """-1 if ``cand`` has dispatch priority, else 0."""
    return -1.0 if cand.priority else 0.0


def score(
    job: Job, cand: Candidate, eta_s: float, now_s: float, peers: Peers, params: MatchParams
) -> Breakdown:
    """The breakdown of giving ``job`` to ``cand`` (assumed feasible), ``eta_s`` away."""
    # The term functions above, inlined: this runs for every feasible pair of a batch.
    prior, prior_weight = params.rating_prior_mean, params.rating_prior_weight
    rating = prior - (cand.rating_sum + prior * prior_weight) / (cand.rating_count + prior_weight)
    jobs = (cand.jobs_today - peers.jobs_today) / max(peers.jobs_today, JOBS_FLOOR)
    money = (cand.earnings_today_minor - peers.earnings_today_minor) / max(
        peers.earnings_today_minor, EARNINGS_FLOOR_MINOR
    )
    fairness = (max(-1.0, min(1.0, jobs)) + max(-1.0, min(1.0, money))) / 2
    eta = eta_s / 60.0
    schedule = schedule_term(job, cand, eta_s, now_s, params)
    affinity = -1.0 if job.customer_id in cand.served_customer_ids else 0.0
    preferred = job.preferred_team_id
    team = -1.0 if preferred is not None and preferred == cand.team_id else 0.0
    priority = -1.0 if cand.priority else 0.0
    load = load_factor(peers, params)
    floor = params.fairness_floor
    w_eta = params.weight_eta * eta
    w_rating = params.weight_rating * load * rating
    w_fairness = params.weight_fairness * (floor + (1.0 - floor) * load) * fairness
    w_schedule = params.weight_schedule * schedule
    w_affinity = params.weight_affinity * affinity
    w_team = params.weight_team * team
    w_priority = params.weight_priority * priority
    return Breakdown(
        raw=(eta, rating, fairness, schedule, affinity, team, priority, 0.0),
        weighted=(w_eta, w_rating, w_fairness, w_schedule, w_affinity, w_team, w_priority, 0.0),
        total=w_eta + w_rating + w_fairness + w_schedule + w_affinity + w_team + w_priority,
    )


def rotation_points(peers: Peers, params: MatchParams) -> float:
    """Points per job of the rotation term: one ``peers.rotation_s`` of ETA (0: off)."""
    slack = peers.rotation_s
    return params.weight_eta * slack / 60.0 if slack else 0.0
