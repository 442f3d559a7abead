"""Deciding again from stored decisions: reproduce a batch, or ask "what if"."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from matching.assign import decide
from matching.errors import MatchingError
from matching.model import Decision
from matching.params import MatchParams


def replay(decisions: Sequence[Decision], params: MatchParams) -> list[Decision]:
    """Decide again from stored decisions alone (one batch, as stored together).

    Uses each decision's job, candidates and ETAs, the batch's time, peers and policy,
    and ``params`` (pass the stored params to reproduce the batch, others for what-if).
    A candidate ruled out before its ETA was known has none; if the new params let it
    through, it is infeasible for want of an ETA.
    """
    if not decisions:
        return []
    first = decisions[0]
    for d in decisions:
        if (d.now_s, d.peers, d.policy) != (first.now_s, first.peers, first.policy):
            raise MatchingError(
                "decisions of one batch share now_s, peers and policy", field="decisions"
            )
    jobs = [d.job for d in decisions]
    candidates = [[c.candidate for c in d.candidates] for d in decisions]
    etas = [[math.nan if c.eta_s is None else c.eta_s for c in d.candidates] for d in decisions]
    return decide(
        jobs, candidates, etas, first.now_s, replace(params, policy=first.policy), first.peers
    )
