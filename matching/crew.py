"""Crews: which workers to send together to a job that needs several. Pure.

A crew job (deep cleaning, moving) starts when its whole crew is at the door, so the crew
is judged by its *last* arrival, and its members must arrive within ``window_s`` of each
other (nobody waits long for the others): :func:`arrive_together`, the one rule the engine's
crews and a dispatcher's crews by hand (``dispatch.overrides``, :func:`apart` saying why
not) are held to. :func:`pick_crew` takes the feasible
candidates of one job with their ETA and score (``matching.assess``) and returns the
crew of ``size`` whose last arrival is earliest, then whose total score is lowest, then
whose worker ids are lowest; or None if no ``size`` workers arrive within the window of
each other.

The engine (``dispatch.engine.Engine._crews``) calls it for each crew order with the
candidates the tick's other orders left free, and offers the crew together
(docs/dispatch.md#crews).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from matching.errors import MatchingError


@dataclass(frozen=True, slots=True)
class CrewPick:
    """A crew: its workers (by ETA, then id), first and last arrival, total score."""

    worker_ids: tuple[int, ...]
    first_arrival_s: float
    last_arrival_s: float
    cost: float


def _check_window(window_s: float) -> None:
    if not window_s >= 0:
        raise MatchingError("must be >= 0", field="crew.window_s")


def arrive_together(etas_s: Iterable[float], window_s: float) -> bool:
    """Whether workers arriving after ``etas_s`` seconds arrive within ``window_s`` of each
    other: the last arrival at most ``window_s`` after the first (one or none always do)."""
    _check_window(window_s)
    etas = list(etas_s)
    return not etas or max(etas) - min(etas) <= window_s


def apart(etas_s: Mapping[int, float], window_s: float) -> str | None:
    """Why a crew whose members (worker id → ETA s) would arrive more than ``window_s``
    apart cannot go together (the rule, and each ETA, the earliest first), or None if they
    :func:`arrive_together`."""
    if arrive_together(etas_s.values(), window_s):
        return None
    ranked = sorted(etas_s.items(), key=lambda we: (we[1], we[0]))
    spread = ranked[-1][1] - ranked[0][1]
    each = ", ".join(f"worker {w} in {eta:.0f} s" for w, eta in ranked)
    return (
        f"the crew would arrive {spread:.0f} s apart ({each}): "
        f"more than [matching] crew_window_s = {window_s:.0f} s"
    )


def pick_crew(
    options: Sequence[tuple[int, float, float]], size: int, window_s: float
) -> CrewPick | None:
    """The best crew of ``size`` among ``options`` — (worker id, ETA s, score total) of the
    feasible candidates — arriving within ``window_s`` of each other; None if none."""
    if size < 1:
        raise MatchingError("must be >= 1", field="crew.size")
    _check_window(window_s)
    ranked = sorted(options, key=lambda o: (o[1], o[0]))
    for k in range(size - 1, len(ranked)):  # ranked[k]: the latest arrival of the crew
        last = ranked[k][1]
        eligible = [o for o in ranked[: k + 1] if arrive_together((o[1], last), window_s)]
        # also those arriving at the same moment after k
        eligible += [o for o in ranked[k + 1 :] if o[1] == last]
        if len(eligible) < size:
            continue
        chosen = sorted(eligible, key=lambda o: (o[2], o[0]))[:size]
        chosen.sort(key=lambda o: (o[1], o[0]))
        return CrewPick(
            worker_ids=tuple(o[0] for o in chosen),
            first_arrival_s=chosen[0][1],
            last_arrival_s=chosen[-1][1],
            cost=sum(o[2] for o in chosen),
        )
    return None


def refill_crew(
    kept: Sequence[float], options: Sequence[tuple[int, float, float]], need: int, window_s: float
) -> tuple[int, ...] | None:
    """Replacements for a crew's missing members: ``need`` workers among ``options`` —
    (worker id, ETA s, score total) — who arrive, with the members ``kept`` (their ETAs),
    within ``window_s`` of each other; the set whose last arrival is earliest, then whose
    total score is lowest, by ETA; None if there is none."""
    if need < 1:
        raise MatchingError("must be >= 1", field="crew.need")
    if not kept:
        raise MatchingError("a crew being refilled keeps at least one member", field="crew.kept")
    if not arrive_together(kept, window_s):
        return None
    lo, hi = min(kept), max(kept)
    best: tuple[tuple[float, float], tuple[int, ...]] | None = None
    starts = sorted({lo, *(o[1] for o in options if hi - window_s <= o[1] < lo)})
    for start in starts:  # the crew's first arrival
        end = start + window_s
        eligible = sorted(
            (o for o in options if start <= o[1] <= end), key=lambda o: (o[1], o[2], o[0])
        )
        if len(eligible) < need:
            continue
        chosen = eligible[:need]
        key = (max(hi, chosen[-1][1]), sum(o[2] for o in chosen))
        if best is None or key < best[0]:
            best = (key, tuple(o[0] for o in chosen))
    return best[1] if best is not None else None
