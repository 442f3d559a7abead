"""The worker socket's messages: typed, tagged by ``type``, parsed and encoded here.

Up (app → server): ``fixes`` (a batch), ``fix`` (one), ``state``, ``offer_reply``,
``sos`` (never rate-limited away; answered with ``sos_result``), ``ping``.
Down (server → app): ``hello``, ``ack``, ``error``, ``state``, ``pong``; dispatch
adds ``offer``, ``offer_withdrawn``, ``offer_result``, ``job`` and ``plan`` (the day
plan, ``dispatch/plan_views.py``). docs/protocol.md is the reference for app developers.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import orjson

from doorstep.errors import InvalidInput
from doorstep.wire import MissingField, NulCharacter, UnknownField, check_no_nul, validation_error
from geo.coords import gcj02_to_wgs84

MAX_FIXES_PER_FRAME = 500
WorkerState = Literal["available", "unavailable"]


class FixIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One location fix as the phone reports it."""

    seq: Annotated[int, msgspec.Meta(ge=1, le=2**53)]
    ts_ms: Annotated[int, msgspec.Meta(ge=0, le=2**53)]
    lat: float
    lng: float
    accuracy_m: float
    speed_mps: float | None = None
    heading_deg: float | None = None
    crs: Literal["wgs84", "gcj02"] = "wgs84"


class FixesMsg(msgspec.Struct, tag="fixes", tag_field="type", forbid_unknown_fields=True):
    """A batch of fixes in ascending ``seq`` (a live fix, or an offline backlog)."""

    fixes: Annotated[list[FixIn], msgspec.Meta(min_length=1, max_length=MAX_FIXES_PER_FRAME)]
    ack: bool = False  # acknowledge this frame at once, whatever the ack interval


class FixMsg(FixIn, tag="fix", tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """A single fix, fields at the top level."""

    ack: bool = False  # acknowledge this frame at once, whatever the ack interval


class StateMsg(msgspec.Struct, tag="state", tag_field="type", forbid_unknown_fields=True):
    """The worker takes jobs (``available``) or pauses (``unavailable``)."""

    state: WorkerState


class OfferReplyMsg(
    msgspec.Struct, tag="offer_reply", tag_field="type", forbid_unknown_fields=True, kw_only=True
):
    """Accept or reject an offer (the same as the REST calls)."""

    offer_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    accept: bool
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


class SosMsg(msgspec.Struct, tag="sos", tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """An SOS from the worker (the same as ``POST /v1/sos``); never rate-limited away,
    answered with ``sos_result``."""

    order_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    lat: float | None = None
    lng: float | None = None
    note: Annotated[str, msgspec.Meta(max_length=200)] = ""


class PingMsg(msgspec.Struct, tag="ping", tag_field="type", forbid_unknown_fields=True):
    """Keep-alive; answered with ``pong``."""


UpMessage = FixesMsg | FixMsg | StateMsg | OfferReplyMsg | SosMsg | PingMsg
_decoder: msgspec.json.Decoder[UpMessage] = msgspec.json.Decoder(UpMessage)


class FrameError(InvalidInput):
    """A frame the server cannot use; sent back as an ``error`` frame."""

    code = "invalid_frame"


class UnknownType(FrameError):
    """The ``type`` names no message the server knows."""

    code = "unknown_type"


class UnknownFrameField(FrameError):
    """A field the message does not take."""

    code = "unknown_field"


class MissingFrameField(FrameError):
    """A required field is absent."""

    code = "missing_field"


class InvalidFrameField(FrameError):
    """A field has the wrong type or is out of its range."""

    code = "invalid_field"


def parse_up(data: str | bytes) -> UpMessage:
    """Decode one frame or raise :class:`FrameError` naming the field."""
    try:
        escaped_nul = b"\\u0000" in data if isinstance(data, bytes) else "\\u0000" in data
        if escaped_nul:  # (the full check only when the escape is there at all)
            check_no_nul(data)
        return _decoder.decode(data)
    except NulCharacter as e:
        raise InvalidFrameField(e.message) from None
    except msgspec.ValidationError as e:
        err = validation_error(e)
        if err.field == "type":
            known = "fixes, fix, state, offer_reply, sos, ping"
            if isinstance(err, MissingField):
                raise FrameError(f"every message needs a type: {known}", field="type") from None
            raise UnknownType(f"unknown message type; one of: {known}", field="type") from None
        kind = (
            UnknownFrameField
            if isinstance(err, UnknownField)
            else MissingFrameField
            if isinstance(err, MissingField)
            else InvalidFrameField
        )
        raise kind(err.message, field=err.field) from None
    except msgspec.DecodeError as e:
        raise FrameError(f"not valid JSON: {e}") from None


def fix_coordinates(f: FixIn) -> tuple[float, float]:
    """The fix's position in WGS-84 (GCJ-02 converted)."""
    if f.crs == "gcj02":
        return gcj02_to_wgs84(f.lat, f.lng)
    return f.lat, f.lng


def encode_hello(
    *,
    worker_id: int,
    city_id: str,
    resume_seq: int,
    state: str,
    frames_per_s: float,
    max_frame_bytes: int,
) -> bytes:
    """The first frame on a new connection: where to resume and the limits."""
    return orjson.dumps(
        {
            "type": "hello",
            "worker_id": worker_id,
            "city_id": city_id,
            "resume_seq": resume_seq,
            "state": state,
            "limits": {
                "max_fixes_per_frame": MAX_FIXES_PER_FRAME,
                "max_frame_bytes": max_frame_bytes,
                "frames_per_s": frames_per_s,
            },
        }
    )


def encode_ack(seq: int, accepted: int, rejected: list[tuple[int, str]]) -> bytes:
    """Everything up to ``seq`` is processed; the app may drop it from its buffer."""
    if not rejected:  # nearly every ack: formatted directly, 5x cheaper than a dict
        return b'{"type":"ack","seq":%d,"accepted":%d,"rejected":[]}' % (seq, accepted)
    return orjson.dumps(
        {
            "type": "ack",
            "seq": seq,
            "accepted": accepted,
            "rejected": [{"seq": s, "reason": r} for s, r in rejected],
        }
    )


def encode_error(code: str, message: str, field: str | None = None) -> bytes:
    """An error frame; the connection stays open unless a close frame follows."""
    return orjson.dumps({"type": "error", "code": code, "message": message, "field": field})


def encode_state(state: str) -> bytes:
    """The worker's state as the server now holds it."""
    return orjson.dumps({"type": "state", "state": state})


PONG = orjson.dumps({"type": "pong"})


class CloseCode:
    """WebSocket close codes used by Doorstep (see docs/protocol.md)."""

    GOING_AWAY = 1001  # server shutting down
    UNSUPPORTED_DATA = 1003  # binary frame
    POLICY_VIOLATION = 1008  # flood: rate limit exceeded for too long
    TOO_BIG = 1009  # frame over max_frame_bytes
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # the stores (PostgreSQL, Redis) are unavailable right now
    REPLACED = 4001  # a newer connection of the same worker took over
    UNAUTHENTICATED = 4401  # no, bad, expired or revoked token
    FORBIDDEN = 4403  # the token's role may not use this socket
    NOT_FOUND = 4404  # no such order / city / worker profile (or not yours)
