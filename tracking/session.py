"""One worker connection's state and decisions, without I/O.

The socket handler feeds it frames and the time; it answers with what to write, what
to acknowledge and whether to throttle or close. Holding this apart from the socket
keeps the rules testable with plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracking.fixes import Bounds, Fix, FixParams, Track, Verdict, check
from tracking.ingest import Last, TrailPoint
from tracking.protocol import FixIn, fix_coordinates


@dataclass(slots=True)
class TokenBucket:
    """``rate`` frames per second with bursts up to ``burst``; ``now_s`` is passed in."""

    rate: float
    burst: float
    tokens: float = -1.0
    last_s: float = 0.0

    def take(self, now_s: float) -> bool:
        """Spend one token if there is one."""
        if self.tokens < 0:
            self.tokens, self.last_s = self.burst, now_s
        self.tokens = min(self.burst, self.tokens + (now_s - self.last_s) * self.rate)
        self.last_s = now_s
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class FrameLimiter:
    """A socket's frame rate: ``frames_per_s`` with bursts of ``burst``, and the flood rule."""

    frames_per_s: float
    burst: float
    flood_close_after_s: float
    bucket: TokenBucket = field(init=False)
    window_start_s: float = 0.0
    throttled_in_window: int = 0

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(self.frames_per_s, self.burst)

    def admit(self, now_s: float) -> str:
        """``"ok"`` to process the frame, ``"throttle"`` to refuse it, ``"close"`` on a flood.

        A flood is refusing more frames within ``flood_close_after_s`` than the allowed
        rate would pass in that time, i.e. sending at over twice the limit for that long.
        """
        if self.bucket.take(now_s):
            return "ok"
        window = self.flood_close_after_s
        if now_s - self.window_start_s > window:
            self.window_start_s, self.throttled_in_window = now_s, 0
        self.throttled_in_window += 1
        if self.throttled_in_window > self.frames_per_s * window:
            return "close"
        return "throttle"


@dataclass(frozen=True, slots=True)
class LiveSocketParams:
    """Limits of the order socket and the city feed (section ``[live_socket]``): their
    clients only ping (share-link viewers, the dispatcher's console), so the limits are
    tighter than the worker socket's."""

    frames_per_s: float = 2.0
    burst_frames: float = 10.0
    flood_close_after_s: float = 5.0  # refusing this long's worth of frames: close (1008)
    max_frame_bytes: int = 4096  # a larger message closes the socket (1009)

    def __post_init__(self) -> None:
        if not (0 < self.frames_per_s <= 1000 and 1 <= self.burst_frames <= 10_000):
            raise ValueError(
                "frames_per_s must be within 0..1000 (above 0) and burst_frames within 1..10000"
            )
        if not 0 < self.flood_close_after_s <= 600:
            raise ValueError("flood_close_after_s must be within 0..600 (above 0)")
        if not 256 <= self.max_frame_bytes <= 1 << 20:
            raise ValueError("max_frame_bytes must be within 256..1048576")


@dataclass(frozen=True, slots=True)
class SocketParams:
    """Limits of the worker socket (section ``[socket]`` of the params file)."""

    frames_per_s: float = 20.0
    burst_frames: float = 60.0
    flood_close_after_s: float = 5.0
    max_frame_bytes: int = 64 * 1024
    feed_interval_ms: int = 1000
    # Acks at most this often per socket (0: one per frame). Acks are cumulative, so a
    # later one covers every frame before it; frames with rejections or ``"ack": true``
    # are acknowledged at once.
    ack_interval_ms: int = 0
    # A socket quiet for ping_interval_s gets a ping; with no data at all for
    # ping_timeout_s after it, the connection is dead and closed (0: no pings).
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if self.frames_per_s <= 0 or self.burst_frames < 1:
            raise ValueError("frames_per_s must be > 0 and burst_frames >= 1")
        if self.max_frame_bytes < 1024:
            raise ValueError("max_frame_bytes must be >= 1024")
        if not 0 <= self.ack_interval_ms <= 60_000:
            raise ValueError("ack_interval_ms must be within 0..60000")
        if self.ping_interval_s < 0 or self.ping_timeout_s <= 0:
            raise ValueError("ping_interval_s must be >= 0 and ping_timeout_s > 0")


# Rejections that say nothing about the seq being used up: a frame's ack does not move
# past them (a duplicate is at or below the track's seq anyway).
_SEQ_REFUSED = frozenset({"duplicate", "seq_too_large", "seq_jump"})


@dataclass(slots=True)
class FrameResult:
    """What one frame of fixes comes to.

    ``seq`` is the worker's sequence after it (the highest accepted seq: what the store
    keeps and a reconnect resumes from); ``ack_seq`` what the ack may cover, which also
    counts the frame's fixes rejected for what they hold (``low_accuracy`` …), so that
    the app drops them, but not those refused for their seq.
    """

    verdicts: list[Verdict]
    accepted: int
    rejected: list[tuple[int, str]]
    last: Last | None
    trail: list[TrailPoint]
    seq: int
    ack_seq: int


@dataclass(slots=True)
class WorkerSession:
    """The live state of one worker's connection."""

    worker_id: int
    city_id: str
    state: str  # what the index holds: the preference, or "busy" while holding a job
    track: Track
    fix_params: FixParams
    socket_params: SocketParams
    limiter: FrameLimiter = field(init=False)
    last_feed_ms: int = 0
    feed_pending: Last | None = None  # a position the feed's rate held back
    preference: str = "available"  # the worker's own choice: available or unavailable
    last_ack_ms: int = 0
    ack_pending: bool = False
    ack_queued: bool = False  # the runtime will send the pending ack when it is due
    bounds: Bounds | None = None  # the city's box with its margin: fixes outside are refused
    pending_seq: int = 0
    pending_accepted: int = 0
    pending_rejected: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        p = self.socket_params
        self.limiter = FrameLimiter(p.frames_per_s, p.burst_frames, p.flood_close_after_s)

    def admit(self, now_s: float) -> str:
        """``"ok"`` to process the frame, ``"throttle"`` to refuse it, ``"close"`` on a
        flood (:meth:`FrameLimiter.admit`)."""
        return self.limiter.admit(now_s)

    def fixes(self, raw: list[FixIn], now_ms: int) -> FrameResult:
        """Validate a frame's fixes in order against the track (:func:`check` on each)."""
        params = self.fix_params
        track = self.track
        verdicts: list[Verdict] = []
        trail: list[TrailPoint] = []
        rejected: list[tuple[int, str]] = []
        last: Last | None = None
        bounds = self.bounds
        ack_seq = track.last_seq
        for f in raw:
            lat, lng = (f.lat, f.lng) if f.crs == "wgs84" else fix_coordinates(f)
            fix = Fix(f.seq, f.ts_ms, lat, lng, f.accuracy_m, f.speed_mps, f.heading_deg)
            track, v = check(track, fix, now_ms=now_ms, params=params, bounds=bounds)
            verdicts.append(v)
            if not v.accepted:
                reason = v.reason or "rejected"
                rejected.append((v.seq, reason))
                if reason not in _SEQ_REFUSED and v.seq > ack_seq:
                    ack_seq = v.seq
                continue
            fx = v.fix
            trail.append((fx.lat, fx.lng, fx.ts_ms, fx.accuracy_m))
            if v.live:
                last = (
                    fx.lat,
                    fx.lng,
                    fx.ts_ms,
                    fx.accuracy_m,
                    "" if fx.speed_mps is None else fx.speed_mps,
                    "" if fx.heading_deg is None else fx.heading_deg,
                )
        self.track = track
        seq = track.last_seq
        return FrameResult(
            verdicts, len(trail), rejected, last, trail, seq, ack_seq if ack_seq > seq else seq
        )

    def written(self, result: FrameResult, now_ms: int, *, urgent: bool = False) -> bool:
        """Note a frame now in the store for the next ack; True if that ack is due now."""
        self.ack_pending = True
        if result.ack_seq > self.pending_seq:  # acks never go back
            self.pending_seq = result.ack_seq
        self.pending_accepted += result.accepted
        self.pending_rejected.extend(result.rejected)
        interval = self.socket_params.ack_interval_ms
        return urgent or bool(result.rejected) or now_ms - self.last_ack_ms >= interval

    def ack_due_at(self) -> int:
        """When the pending ack is due (ms), if one is pending."""
        return self.last_ack_ms + self.socket_params.ack_interval_ms

    def take_ack(self, now_ms: int) -> tuple[int, int, list[tuple[int, str]]]:
        """The pending ack (seq, accepted, rejected), now counted as sent."""
        ack = (self.pending_seq, self.pending_accepted, self.pending_rejected)
        self.ack_pending = False
        self.pending_accepted = 0
        self.pending_rejected = []
        self.last_ack_ms = now_ms
        return ack

    def feed_due(self, now_ms: int) -> bool:
        """True if this worker's position should go to the dispatcher feed now (≤ 1 Hz)."""
        if now_ms - self.last_feed_ms >= self.socket_params.feed_interval_ms:
            self.last_feed_ms = now_ms
            return True
        return False
