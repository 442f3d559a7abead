"""The engine's copy of workers' skills (PostgreSQL ``workers.skills``), as bitmasks.

Skill-aware retrieval (``matching.index``, docs/matching-index.md#skills) needs every
available worker's skills each tick; skills change rarely, so the copy is read whole once
(and again every ``reload_s``), and each tick reads only the profiles whose
``updated_at`` (set by every write of a profile, indexed) is at most ``overlap_s``
before the previous read's database time: a profile written by a transaction that
started before that read but committed after it is caught while it lasted less than
``overlap_s``; anything slower, by the next whole read. A profile may be read again
(its mask unchanged: nothing else happens).

Fail safe: a worker not in the copy (a new profile not read yet) has every skill bit
(``matching.skill_bits.ALL``): retrieval keeps them and feasibility judges them, as
before skill-aware retrieval. A worker who lost a skill and is still read with it is
retrieved and rejected by feasibility ("missing skill"), as before.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import numpy as np

from doorstep.db import Conn
from matching.live_index import LiveWorkers
from matching.skill_bits import MaskArray, SkillMasks


class WorkerSkills:
    """Worker id -> skills mask for every worker profile, kept current from PostgreSQL."""

    def __init__(self, *, overlap_s: float = 300.0, reload_s: float = 3600.0) -> None:
        self.masks = SkillMasks()
        self.overlap_s = overlap_s
        self.reload_s = reload_s
        self._since: datetime | None = None  # read profiles updated at or after this
        self._loaded_mono: float | None = None
        self._aligned: tuple[np.ndarray, int, MaskArray] | None = None  # ids, version, masks
        self.reads = 0  # whole reads, for tests and logs

    async def refresh(self, db: Conn) -> int:
        """Read the profiles changed since the last read (all of them the first time and
        every ``reload_s``). Returns the number of workers whose mask changed."""
        whole = (
            self._since is None
            or self._loaded_mono is None
            or time.monotonic() - self._loaded_mono >= self.reload_s
        )
        # Grouped by skill set (a few hundred at most): ~3 ms of client CPU for 100k
        # workers where a row per worker took ~124 (text[] decoded per row); the marker
        # row (no skills) carries the database's time.
        rows = await db.fetch(
            "SELECT now() AS at, skills, array_agg(user_id) AS ids FROM workers "
            "WHERE $1::timestamptz IS NULL OR updated_at >= $1 GROUP BY skills "
            "UNION ALL SELECT now(), NULL, NULL",
            None if whole else self._since,
        )
        at: datetime = next(r["at"] for r in rows if r["skills"] is None)
        changed = self.masks.update_groups(
            (r["skills"], r["ids"]) for r in rows if r["skills"] is not None
        )
        self._since = at - timedelta(seconds=self.overlap_s)
        if whole:
            self._loaded_mono = time.monotonic()
            self.reads += 1
        return changed

    def aligned(self, live: LiveWorkers) -> MaskArray:
        """A mask per row of ``live.ids`` (for ``live.index(skills=...)``); kept while
        neither the rows nor any mask changed."""
        kept = self._aligned
        if kept is not None and kept[0] is live.ids and kept[1] == self.masks.version:
            return kept[2]
        masks = self.masks.masks_for(live.ids)
        self._aligned = (live.ids, self.masks.version, masks)
        return masks

    def required(self, skills: frozenset[str]) -> int:
        """A job's required mask."""
        return self.masks.required(sorted(skills))
