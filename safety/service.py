"""The safety desk: SOS alerts and trail anomalies for the dispatchers, the async glue.

An SOS (from the worker's app over HTTP or the worker socket, or from the customer's
order page) opens an alert in one transaction with its escalation job and the SMS to
the person's emergency contacts (each with a live link); the alert then goes to the
city's dispatcher feed at once, with the live position and the recent trail, straight
after the commit (Redis PUBLISH — not through the events relay, whose hop would add
its polling to the alert's latency). A repeat while the alert is open counts on it and
is pushed again: an SOS is never rate-limited away, and a flood is one alert.

Dispatchers and admins acknowledge (``acknowledge``) and resolve (``resolve``) alerts;
until one is acknowledged, the ``safety:escalate`` job tells the staff by inbox and SMS
every ``escalate_every_s``. Trail anomalies (safety/watch.py) open alerts of their
kinds the same way, without contacts or escalation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec
import orjson

from dispatch import store as dispatch_store
from doorstep.db import Tx
from doorstep.stores import STORE_ERRORS, Stores
from jobs import store as jobs_store
from notifications import store as notifications_store
from privacy.crypto import reveal
from safety import rules, store
from safety.errors import AlertNotFound, AlreadyHandled, InvalidSafetyInput, SosOrderNotFound
from safety.store import Contact, SafetyAlert
from safety.trail import Anomaly
from tracking import positions
from workforce import store as workforce_store

log = logging.getLogger("doorstep.safety")

ESCALATE_TASK = "safety:escalate"
QUEUE = "safety"


class FeedPush(Protocol):
    """The city's dispatcher feed (the tracking runtime)."""

    async def publish_feed(self, city_id: str, payload: dict[str, Any]) -> None: ...


class SmsQueue(Protocol):
    """Queueing an SMS in the caller's transaction (notifications.service.Notifier)."""

    async def queue_sms(
        self,
        tx: Tx,
        *,
        key: str,
        user_id: int | None,
        phone: str,
        template_code: str,
        params: dict[str, str],
        not_before: datetime,
    ) -> int | None: ...


@dataclass(frozen=True, slots=True)
class SosResult:
    """What the person who pressed SOS is told: the alert, and whether it is a repeat."""

    alert: SafetyAlert
    repeat: bool
    contacts_told: int


@dataclass(frozen=True, slots=True)
class LiveView:
    """What a live link (or the console) shows: the alert, the person's last position
    and recent trail, and, for a customer's SOS, the order's worker's."""

    alert_id: int
    city_id: str
    kind: str
    name: str
    open: bool
    acknowledged: bool
    position: dict[str, Any] | None
    trail: list[tuple[float, float, int]]
    worker_position: dict[str, Any] | None


def alert_message(
    alert: SafetyAlert,
    *,
    name: str = "",
    trail: list[tuple[float, float, int]] | None = None,
    event: str = "raised",
) -> dict[str, Any]:
    """The feed's ``safety_alert`` message (docs/protocol.md)."""
    return {
        "type": "safety_alert",
        "event": event,  # raised | repeated | escalated | acknowledged | resolved
        "alert": {
            **{k: v for k, v in asdict(alert).items() if k != "detail"},
            "detail": alert.detail,
            "name": name,
        },
        "trail": [[lat, lng, ts] for lat, lng, ts in (trail or [])],
    }


class SafetyDesk:
    """The safety capability of one process."""

    def __init__(
        self,
        stores: Stores,
        *,
        feed: FeedPush,
        sms: SmsQueue | None,
        params: rules.SafetyParams,
        link_key: str,
        base_url: str,
    ) -> None:
        self.stores = stores
        self.feed = feed
        self.sms = sms
        self.params = params
        self.link_key = link_key
        self.base_url = base_url.rstrip("/")

    # --- SOS ------------------------------------------------------------------------

    async def sos(
        self,
        user_id: int,
        roles: frozenset[str] | list[str] | tuple[str, ...],
        *,
        order_id: int | None,
        lat: float | None,
        lng: float | None,
        note: str,
        source: str,
        known: tuple[str, int | None] | None = None,
    ) -> SosResult:
        """Raise (or repeat) the caller's SOS; the dispatchers hear it at once.

        ``known``: the worker socket already knows the worker's city and the job they
        hold (``order_id`` then None or that job): no lookups before the alert.

        The alert is one statement, committed on its own, and published at once; its
        follow-ups (the escalation job, the contacts' SMS) come in a second transaction
        after the push. Should that one not commit (a crash in between), the periodic
        ``safety:sweep`` finds the alert and makes them (both are idempotent).
        """
        pool = self.stores.pool
        ts_ms: int | None = int(time.time() * 1000) if lat is not None else None
        trail: list[tuple[float, float, int]] = []
        detail: dict[str, Any] = {}
        if known is not None and "worker" in roles and order_id in (None, known[1]):
            city_id, role = known[0], "worker"
            order_id = known[1]
            if order_id is not None:
                detail = {"worker_id": user_id}
            trail = await self._worker_position(city_id, user_id, detail)
        else:
            order = await dispatch_store.get(pool, order_id) if order_id is not None else None
            if order_id is not None and (
                order is None or user_id not in (order.worker_id, order.customer_id)
            ):
                raise SosOrderNotFound(f"no order {order_id} of yours", field="order_id")
            if "worker" in roles and (order is None or order.worker_id == user_id):
                worker = await workforce_store.worker(pool, user_id, detail=False)
                if worker is None:
                    raise InvalidSafetyInput("this account has no worker profile", field="role")
                city_id, role = worker.city_id, "worker"
                if order is None:
                    order = await dispatch_store.active_for_worker(pool, user_id)
                trail = await self._worker_position(city_id, user_id, detail)
            elif order is not None and order.customer_id == user_id:
                city_id, role = order.city_id, "customer"
                if lat is None or lng is None:  # at home: the order's address
                    lat, lng = order.lat, order.lng
                    ts_ms = int(time.time() * 1000)
            else:
                raise InvalidSafetyInput(
                    "a customer's SOS names the order (the worker in the home)", field="order_id"
                )
            order_id = order.id if order is not None else None
            if order is not None:
                detail["worker_id"] = order.worker_id
        live = detail.pop("_live", None)
        if live is not None and (lat is None or lng is None):
            lat, lng, ts_ms = live
        now = datetime.now(UTC)
        alert, new, name = await store.raise_alert(
            pool,
            city_id=city_id,
            kind="sos",
            subject_id=user_id,
            subject_role=role,
            order_id=order_id,
            source=source,
            message=note,
            lat=lat,
            lng=lng,
            position_ts_ms=ts_ms,
            detail=detail,
            at=now,
        )
        await self._push(alert, name=name, trail=trail, event="raised" if new else "repeated")
        told = await self.follow_up(alert, now) if new else 0
        return SosResult(alert, repeat=not new, contacts_told=told)

    async def _worker_position(
        self, city_id: str, worker_id: int, detail: dict[str, Any]
    ) -> list[tuple[float, float, int]]:
        """The worker's live position (into ``detail["_live"]``) and recent trail, read
        together."""
        redis, keys = self.stores.redis, self.stores.keys
        batches = self.params.trail_batches
        position, trail = await asyncio.gather(
            positions.read_position(redis, keys, city_id, worker_id),
            positions.read_trail(redis, keys, city_id, worker_id, batches=batches)
            if batches
            else _no_trail(),
        )
        if position is not None:
            detail["_live"] = (position.lat, position.lng, position.ts_ms)
        return trail

    async def follow_up(self, alert: SafetyAlert, now: datetime) -> int:
        """A new SOS's follow-ups, in one transaction: its escalation job and the SMS to
        the person's emergency contacts; how many contacts. Idempotent (a queueing lock,
        keyed SMS), so the sweep may run it again."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            await jobs_store.defer(
                conn,
                ESCALATE_TASK,
                {"alert_id": alert.id},
                at=alert.raised_at + timedelta(seconds=self.params.ack_within_s),
                queueing_lock=f"sos-escalate:{alert.id}",
                queue=QUEUE,
            )
            return await self._tell_contacts(conn, alert, now)

    async def sweep(self, now: datetime) -> int:
        """The periodic check: SOS alerts of the last hour whose first escalation is
        overdue by a minute get their follow-ups again (a crash lost them); how many."""
        due = await store.follow_ups_due(
            self.stores.pool,
            raised_after=now - timedelta(hours=1),
            due_before=now - timedelta(seconds=self.params.ack_within_s + 60),
        )
        for alert_id in due:
            alert = await store.get(self.stores.pool, alert_id)
            if alert is not None:
                await self.follow_up(alert, now)
        return len(due)

    async def _tell_contacts(self, tx: Tx, alert: SafetyAlert, now: datetime) -> int:
        if self.sms is None:
            return 0
        people = await store.contacts(tx, alert.subject_id)
        if not people:
            return 0
        who = await store.person(tx, alert.subject_id)
        link = self.link(alert.id, now=int(now.timestamp()))
        for i, c in enumerate(people):
            await self.sms.queue_sms(
                tx,
                key=f"sos:{alert.id}:contact:{i}:sms",
                user_id=None,
                phone=c.phone,
                template_code="DS_SOS_CONTACT_ZH",
                params={"name": who[0] if who else "", "link": link},
                not_before=now,
            )
        return len(people)

    def link(self, alert_id: int, *, now: int) -> str:
        """The live link an emergency contact gets."""
        token = rules.issue_link(alert_id, now=now, ttl_s=self.params.link_ttl_s, key=self.link_key)
        return f"{self.base_url}/sos/{alert_id}?t={token}"

    async def _push(
        self,
        alert: SafetyAlert,
        *,
        name: str = "",
        trail: list[tuple[float, float, int]] | None = None,
        event: str,
    ) -> None:
        """Tell the city's dispatchers, after the commit; best effort (the console
        reloads ``GET /v1/safety/alerts`` when its feed reconnects)."""
        try:
            await self.feed.publish_feed(
                alert.city_id, alert_message(alert, name=name, trail=trail, event=event)
            )
        except STORE_ERRORS as e:
            log.warning("safety alert %s committed; its feed message was not sent: %s", alert.id, e)

    # --- dispatchers ------------------------------------------------------------------

    async def acknowledge(self, alert_id: int, *, by: int) -> SafetyAlert:
        """A dispatcher or admin takes the alert: escalation stops."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            alert = await store.acknowledge(conn, alert_id, by=by, at=datetime.now(UTC))
            if alert is None:
                await self._refusal(conn, alert_id, "acknowledged")
            assert alert is not None
            await jobs_store.cancel_waiting(conn, queueing_lock=f"sos-escalate:{alert.id}")
        await self._push(alert, event="acknowledged")
        return alert

    async def resolve(self, alert_id: int, *, by: int, resolution: str) -> SafetyAlert:
        """Close the alert with what was done."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            alert = await store.resolve(
                conn, alert_id, by=by, at=datetime.now(UTC), resolution=resolution
            )
            if alert is None:
                await self._refusal(conn, alert_id, "resolved")
            assert alert is not None
            await jobs_store.cancel_waiting(conn, queueing_lock=f"sos-escalate:{alert.id}")
        await self._push(alert, event="resolved")
        return alert

    async def _refusal(self, conn: Tx, alert_id: int, what: str) -> None:
        existing = await store.get(conn, alert_id)
        if existing is None:
            raise AlertNotFound(f"no safety alert {alert_id}", field="alert_id")
        if existing.resolved_at is not None:
            raise AlreadyHandled(
                f"alert {alert_id} was resolved at {existing.resolved_at.isoformat()}",
                field="alert_id",
            )
        raise AlreadyHandled(
            f"alert {alert_id} was already acknowledged by user {existing.acknowledged_by}",
            field="alert_id",
        )

    async def escalate(self, alert_id: int, *, now: datetime) -> SafetyAlert | None:
        """The escalation job: if nobody acknowledged the alert, tell the staff by inbox
        and SMS and plan the next round (at most ``max_escalations``)."""
        pushes: list[tuple[int, Any]] = []
        async with self.stores.pool.acquire() as conn, conn.transaction():
            alert = await store.escalate(conn, alert_id, at=now)
            if alert is None:
                return None  # acknowledged or resolved meanwhile
            who = await store.person(conn, alert.subject_id)
            name = who[0] if who else ""
            waited = round((now - alert.raised_at).total_seconds())
            round_no = alert.escalations
            for user_id in await store.staff_to_tell(conn):
                note = await notifications_store.add_to_inbox(
                    conn,
                    user_id=user_id,
                    key=f"sos:{alert.id}:esc:{round_no}:{user_id}:inbox",
                    kind="sos_escalated",
                    event_id=None,
                    order_id=alert.order_id,
                    title="紧急求助未确认 / SOS not acknowledged",
                    body=f"警报 {alert.id}（{name}）{waited} 秒无人确认 / alert {alert.id} "
                    f"({name}) unacknowledged for {waited} s",
                )
                if note is not None:
                    pushes.append((user_id, note))
                sealed = await conn.fetchval("SELECT phone FROM users WHERE id = $1", user_id)
                phone = reveal("users.phone", sealed) if sealed else ""
                if self.sms is not None and phone:
                    await self.sms.queue_sms(
                        conn,
                        key=f"sos:{alert.id}:esc:{round_no}:{user_id}:sms",
                        user_id=user_id,
                        phone=str(phone),
                        template_code="DS_SOS_ESCALATED_ZH",
                        params={"alert_id": str(alert.id), "name": name, "seconds": str(waited)},
                        not_before=now,
                    )
            if round_no < self.params.max_escalations:
                await jobs_store.defer(
                    conn,
                    ESCALATE_TASK,
                    {"alert_id": alert.id},
                    at=now + timedelta(seconds=self.params.escalate_every_s),
                    queueing_lock=f"sos-escalate:{alert.id}",
                    queue=QUEUE,
                )
        await self._push(alert, name=name, event="escalated")
        for user_id, note in pushes:
            try:
                await self.stores.redis.publish(
                    self.stores.keys.user_channel(user_id),
                    orjson.dumps(
                        {"type": "notification", "notification": msgspec.to_builtins(note)}
                    ),
                )
            except STORE_ERRORS as e:
                log.warning("escalation inbox push to %s failed: %s", user_id, e)
        return alert

    # --- anomalies -------------------------------------------------------------------

    async def anomaly(self, worker_id: int, city_id: str, found: Anomaly) -> SafetyAlert | None:
        """A trail anomaly of a worker on a job: an alert of its kind (one open per
        worker, kind and order)."""
        alert, new, name = await store.raise_alert(
            self.stores.pool,
            city_id=city_id,
            kind=found.kind,
            subject_id=worker_id,
            subject_role="worker",
            order_id=found.order_id,
            source="trail",
            message=found.message,
            lat=found.lat,
            lng=found.lng,
            position_ts_ms=found.ts_ms,
            detail=found.detail,
            at=datetime.now(UTC),
        )
        if new:
            await self._push(alert, name=name, event="raised")
            return alert
        return None

    # --- reads ------------------------------------------------------------------------

    async def open_alerts(self, city_id: str) -> list[SafetyAlert]:
        """The city's open alerts, SOS first."""
        return await store.open_in(self.stores.pool, city_id)

    async def live_view(self, alert_id: int) -> LiveView:
        """What the alert's live link shows."""
        pool, redis, keys = self.stores.pool, self.stores.redis, self.stores.keys
        alert = await store.get(pool, alert_id)
        if alert is None:
            raise AlertNotFound(f"no safety alert {alert_id}", field="alert_id")
        who = await store.person(pool, alert.subject_id)
        position: dict[str, Any] | None = None
        trail: list[tuple[float, float, int]] = []
        worker_position = None
        if alert.resolved_at is None:
            if alert.subject_role == "worker":
                p = await positions.read_position(redis, keys, alert.city_id, alert.subject_id)
                if p is not None:
                    position = {"lat": p.lat, "lng": p.lng, "ts_ms": p.ts_ms}
                trail = await positions.read_trail(
                    redis, keys, alert.city_id, alert.subject_id, batches=self.params.trail_batches
                )
            worker_id = alert.detail.get("worker_id")
            if alert.subject_role == "customer" and isinstance(worker_id, int):
                p = await positions.read_position(redis, keys, alert.city_id, worker_id)
                if p is not None:
                    worker_position = {"lat": p.lat, "lng": p.lng, "ts_ms": p.ts_ms}
            if position is None and alert.lat is not None and alert.lng is not None:
                position = {"lat": alert.lat, "lng": alert.lng, "ts_ms": alert.position_ts_ms}
        return LiveView(
            alert.id,
            alert.city_id,
            alert.kind,
            who[0] if who else "",
            alert.resolved_at is None,
            alert.acknowledged_at is not None,
            position,
            trail,
            worker_position,
        )

    async def contacts(self, user_id: int) -> list[Contact]:
        """The user's emergency contacts."""
        return await store.contacts(self.stores.pool, user_id)

    async def save_contacts(self, user_id: int, items: list[tuple[str, str]]) -> list[Contact]:
        """Replace the user's emergency contacts (checked: at most three, mobiles)."""
        checked = rules.check_contacts(items)
        async with self.stores.pool.acquire() as conn, conn.transaction():
            await store.save_contacts(conn, user_id, checked)
        return [Contact(n, p) for n, p in checked]


async def _no_trail() -> list[tuple[float, float, int]]:
    return []


class RedisFeed:
    """The dispatcher feed for a process without the tracking runtime (a job worker):
    the same PUBLISH on the city's feed channel."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    async def publish_feed(self, city_id: str, payload: dict[str, Any]) -> None:
        """Send a message to the city's dispatcher feed."""
        await self.stores.redis.publish(self.stores.keys.feed(city_id), orjson.dumps(payload))
