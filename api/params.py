"""Typed declarations of path and query parameters: the same declaration validates a
request (before its handler runs) and writes the parameter into the OpenAPI document.

A query parameter a route does not declare is refused with 422
``unknown_query_parameter`` naming it, as an unknown body field is: a misspelt filter
(``?catgory=``) must not silently return everything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from doorstep.errors import InvalidInput
from doorstep.wire import NulCharacter
from geo.errors import CoordinateError

ID_MAX = 2**63 - 1  # a PostgreSQL bigint
_INT = re.compile(r"-?[0-9]{1,20}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _parses(parse: Any, raw: str) -> bool:
    try:
        parse(raw)
    except ValueError:
        return False
    return True


_TYPE = {int: "integer", float: "number", str: "string", bool: "boolean"}


class UnknownQueryParameter(InvalidInput):
    """A query parameter the route does not take."""

    code = "unknown_query_parameter"


@dataclass(frozen=True, slots=True)
class QueryParam:
    """A query parameter: its type, bounds or choices, and whether it is required.

    ``fmt`` is ``"date"`` (YYYY-MM-DD) or ``"date-time"`` (ISO 8601 with an offset)
    for strings; ``ge``/``le`` bound numbers; ``choices`` lists a string's values.
    """

    name: str
    kind: type
    description: str
    required: bool = False
    ge: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()
    fmt: str | None = None
    max_length: int | None = None
    pattern: str | None = None
    error: type[InvalidInput] = InvalidInput  # what a number out of bounds raises

    def schema(self) -> dict[str, Any]:
        """The parameter's JSON Schema."""
        out: dict[str, Any] = {"type": _TYPE[self.kind]}
        if self.ge is not None:
            out["minimum"] = self.ge
        if self.le is not None:
            out["maximum"] = self.le
        if self.choices:
            out["enum"] = list(self.choices)
        if self.fmt is not None:
            out["format"] = self.fmt
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        if self.pattern is not None:
            out["pattern"] = self.pattern
        if self.kind is str and not self.choices and self.fmt is None:
            out["minLength"] = 1
        return out

    def openapi(self) -> dict[str, Any]:
        """The parameter's OpenAPI object."""
        return {
            "name": self.name,
            "in": "query",
            "required": self.required,
            "description": self.description,
            "schema": self.schema(),
        }

    def check(self, raw: str) -> None:
        """Raise a 422 naming the parameter if ``raw`` breaks its declaration."""
        if "\x00" in raw:
            raise NulCharacter("text must not contain NUL characters", field=self.name)
        if self.kind is int:
            if not _INT.fullmatch(raw):
                raise InvalidInput("must be an integer (at most 20 digits)", field=self.name)
            self._bounds(int(raw))
        elif self.kind is float:
            try:
                value = float(raw)
            except ValueError:
                raise InvalidInput("must be a number", field=self.name) from None
            if not math.isfinite(value):
                raise self.error("must be a finite number", field=self.name)
            self._bounds(value)
        elif self.kind is bool:
            if raw not in ("true", "false"):
                raise InvalidInput("must be true or false", field=self.name)
        elif self.choices:
            if raw not in self.choices:
                raise InvalidInput(f"must be one of {', '.join(self.choices)}", field=self.name)
        elif self.fmt == "date":
            if not _DATE.fullmatch(raw) or not _parses(date.fromisoformat, raw):
                raise InvalidInput("must be a date as YYYY-MM-DD", field=self.name)
        elif self.fmt == "date-time":
            if not _DATE_TIME.fullmatch(raw) or not _parses(datetime.fromisoformat, raw):
                raise InvalidInput(
                    "must be an RFC 3339 time with an offset, e.g. 2026-11-22T08:00:00+08:00",
                    field=self.name,
                )
        else:
            if not raw:
                raise InvalidInput("must not be empty", field=self.name)
            if self.max_length is not None and len(raw) > self.max_length:
                raise InvalidInput(f"must be at most {self.max_length} characters", field=self.name)
            if self.pattern is not None and not re.search(self.pattern, raw):
                raise InvalidInput(f"must match {self.pattern}", field=self.name)

    def _bounds(self, value: float) -> None:
        if self.ge is not None and self.le is not None and not self.ge <= value <= self.le:
            raise self.error(
                f"must be between {_num(self.ge)} and {_num(self.le)}", field=self.name
            )
        if self.ge is not None and value < self.ge:
            raise self.error(f"must be at least {_num(self.ge)}", field=self.name)
        if self.le is not None and value > self.le:
            raise self.error(f"must be at most {_num(self.le)}", field=self.name)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def check_query(
    query: Mapping[str, str], multi: Sequence[tuple[str, str]], declared: Sequence[QueryParam]
) -> None:
    """Refuse unknown, repeated, missing or malformed query parameters, naming the first."""
    by_name = {q.name: q for q in declared}
    seen: set[str] = set()
    for name, _ in multi:
        if name not in by_name:
            accepted = ", ".join(by_name) or "none"
            raise UnknownQueryParameter(
                f"this query parameter is not accepted here (accepted: {accepted})", field=name
            )
        if name in seen:
            raise InvalidInput("give this query parameter once", field=name)
        seen.add(name)
    for q in declared:
        raw = query.get(q.name)
        if raw is None:
            if q.required:
                raise InvalidInput("this query parameter is required", field=q.name)
            continue
        q.check(raw)


def latitude(description: str, *, required: bool = False) -> QueryParam:
    """A latitude in degrees (out of range: ``invalid_coordinate``, as in bodies)."""
    return QueryParam("lat", float, description, required, ge=-90, le=90, error=CoordinateError)


def longitude(description: str, *, required: bool = False) -> QueryParam:
    """A longitude in degrees (out of range: ``invalid_coordinate``)."""
    return QueryParam("lng", float, description, required, ge=-180, le=180, error=CoordinateError)


# Path parameters, by name: every route uses the same name for the same kind of value.
ID = {"type": "integer", "minimum": 1, "maximum": ID_MAX}
PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "user_id": ID,
    "address_id": ID,
    "worker_id": ID,
    "certificate_id": ID,
    "team_id": ID,
    "order_id": ID,
    "offer_id": ID,
    "series_id": ID,
    "file_id": ID,
    "delivery_id": ID,
    "job_id": ID,
    "alert_id": ID,
    "notification_id": ID,
    "withdrawal_id": ID,
    "reconciliation_id": ID,
    "rule_id": ID,
    "payee_id": ID,
    "payee_kind": {"type": "string", "enum": ["worker", "merchant"]},
    "extra_id": ID,
    "template_id": ID,
    "application_id": ID,
    "document_id": ID,
    "exam_id": ID,
    "attempt_id": ID,
    "action_id": ID,
    "grant_id": ID,
    "merchant_id": ID,
    "role_name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{2,39}$"},
    "city_id": {"type": "string", "minLength": 1},
    "service_code": {"type": "string", "minLength": 1},
    "on_date": {"type": "string", "format": "date"},
    "provider": {"type": "string", "enum": ["wechat", "alipay"]},
    "ticket_id": ID,
    "spot_id": ID,
}


def path_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of path parameter ``name`` (every name must be listed above)."""
    return dict(PATH_SCHEMAS[name])
