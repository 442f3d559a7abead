"""Workers' skills as bitmasks, for skill-aware retrieval (``matching.index``). Pure.

The engine's index must return each job's nearest workers *that have the job's skills*
(issue 20 §6: of the 500 × 24 pairs of the benchmark tick, 5,127 failed only on a
missing skill, and an order needing a rare skill could find no qualified worker among
its 24 nearest while one was the 30th). A worker's skills become one ``uint64`` whose
bit ``i`` is the ``i``-th skill code seen (:class:`SkillBits`); a job's required skills
become a mask the same way, and a worker qualifies when ``held & required == required``.

Fail safe, everywhere: a worker whose skills are not known (yet) has every bit set
(:data:`ALL`), so retrieval keeps them and feasibility (``matching.feasibility``) judges
them as before; a skill beyond the 64th code seen gets no bit and is left out of the
required mask (retrieval filters less, feasibility still checks it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from matching.errors import MatchingError

IntArray = npt.NDArray[np.int64]
MaskArray = npt.NDArray[np.uint64]

BITS: Final = 64
ALL: Final = np.uint64(2**64 - 1)  # a worker whose skills are unknown: kept as a candidate


class SkillBits:
    """Skill code -> bit, assigned in the order codes are first seen (stable for the life
    of the object: masks made earlier stay valid)."""

    def __init__(self) -> None:
        self._bit: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._bit)

    def mask(self, codes: Iterable[str]) -> int:
        """The mask of these skills; a code seen for the first time gets the next free bit,
        a code past the 64th gets none (left out: see the module's docstring)."""
        out = 0
        for code in codes:
            bit = self._bit.get(code)
            if bit is None:
                if len(self._bit) >= BITS:
                    continue
                bit = self._bit[code] = len(self._bit)
            out |= 1 << bit
        return out


class SkillMasks:
    """Worker id -> skills mask, for the workers whose profile was read; sorted arrays,
    updated in batches (``np.searchsorted``, as ``matching.live_index.LiveWorkers``)."""

    def __init__(self) -> None:
        self.bits = SkillBits()
        self.ids: IntArray = np.empty(0, dtype=np.int64)
        self.masks: MaskArray = np.empty(0, dtype=np.uint64)
        self.version = 0  # bumped by every change (callers cache arrays aligned to it)

    def __len__(self) -> int:
        return len(self.ids)

    def update(self, ids: Iterable[int], skills: Iterable[Iterable[str]]) -> int:
        """Set these workers' skills (a worker repeated: the last wins). Returns the number
        of workers whose mask changed or who were not known before."""
        new_ids = np.fromiter(ids, dtype=np.int64)
        new_masks = np.fromiter(
            (self.bits.mask(s) for s in skills), dtype=np.uint64, count=len(new_ids)
        )
        return self._set(new_ids, new_masks)

    def update_groups(self, groups: Iterable[tuple[Iterable[str], Sequence[int]]]) -> int:
        """The same from (skills, worker ids holding exactly those) pairs: a read grouped
        by skill set decodes ~30× cheaper than one row per worker (measured: 3 against 124
        ms of client CPU for 100k workers). A worker in two groups: the later wins."""
        id_parts: list[IntArray] = []
        mask_parts: list[MaskArray] = []
        for skills, ids in groups:
            id_parts.append(np.asarray(ids, dtype=np.int64))
            mask_parts.append(np.full(len(ids), self.bits.mask(skills), dtype=np.uint64))
        if not id_parts:
            return 0
        return self._set(np.concatenate(id_parts), np.concatenate(mask_parts))

    def _set(self, new_ids: IntArray, new_masks: MaskArray) -> int:
        if len(new_ids) == 0:
            return 0
        unique, first_from_end = np.unique(new_ids[::-1], return_index=True)
        new_ids, new_masks = unique, new_masks[::-1][first_from_end]
        rows = np.searchsorted(self.ids, new_ids)
        known = rows < len(self.ids)
        known[known] = self.ids[rows[known]] == new_ids[known]
        changed = int((self.masks[rows[known]] != new_masks[known]).sum()) + int((~known).sum())
        self.masks[rows[known]] = new_masks[known]
        if (~known).any():
            all_ids = np.concatenate([self.ids, new_ids[~known]])
            order = np.argsort(all_ids, kind="stable")
            self.ids = all_ids[order]
            self.masks = np.concatenate([self.masks, new_masks[~known]])[order]
        if changed:
            self.version += 1
        return changed

    def masks_for(self, ids: IntArray) -> MaskArray:
        """The masks of these workers, :data:`ALL` for a worker not known."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(self.ids):
            return np.full(len(ids), ALL, dtype=np.uint64)
        rows = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return np.where(self.ids[rows] == ids, self.masks[rows], ALL)

    def required(self, codes: Iterable[str]) -> int:
        """A job's required mask (codes no worker has yet get a bit: only workers with
        unknown skills match them)."""
        return self.bits.mask(codes)


def qualified(held: MaskArray, required: int) -> npt.NDArray[np.bool_]:
    """Which of the masks ``held`` have every bit of ``required``."""
    if required < 0 or required >= 2**BITS:
        raise MatchingError("must be a 64-bit mask", field="required")
    want = np.uint64(required)
    return np.asarray((held & want) == want)
