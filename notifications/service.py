"""The notification centre: reacts to domain events, keeps the inbox, sends SMS by jobs,
schedules reminders. The async glue between :mod:`notifications.rules`, the store, the
job queue, Redis (live pushes) and the SMS provider.

Effects are keyed (``notifications.key``, ``sms_messages.key``) by the event and the
recipient, and written in the consumer's transaction: a redelivered event adds nothing.
An SMS is a row plus a job deferred in the same transaction (exactly-once enqueue); the
job hands it to the provider with our message id as ``OutId``, which the gateway uses
to drop a repeat. The live push to ``/v1/ws/me`` follows the commit, best effort and at
least once (a client drops a repeated ``key``); the inbox in PostgreSQL is the truth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

import orjson
from redis.exceptions import RedisError

from doorstep.db import Tx
from doorstep.stores import Stores
from events.relay import Consumer
from events.types import (
    AccountChanged,
    CertificateExpiring,
    Event,
    MemberLevelChanged,
    OrderChanged,
)
from jobs import store as jobs_store
from notifications import rules, store
from notifications.errors import BadReceipt, NotificationNotFound, ReceiptRejected
from notifications.models import Notification
from notifications.signing import receipt_ok
from notifications.sms import SmsFailed, SmsProvider
from notifications.templates import inbox_text, language, sms_params, sms_template

log = logging.getLogger("doorstep.notifications")

CONSUMER = "notifications"
QUEUE = "notifications"
SEND_TASK = "notifications:send_sms"
REMIND_TASK = "notifications:remind"
SMS_MAX_ATTEMPTS = 8
OPEN_STATUSES = frozenset(
    {"pending", "confirmed", "dispatching", "offered", "assigned", "en_route", "arrived"}
)


class WorkerPresence(Protocol):
    """Whether a worker's socket is open (so an offer reached them there)."""

    async def worker_online(self, worker_id: int) -> bool: ...


class Notifier:
    """The notification centre of one process."""

    def __init__(
        self,
        stores: Stores,
        *,
        presence: WorkerPresence | None,
        provider: SmsProvider | None,
        receipt_secret: str,
    ) -> None:
        self.stores = stores
        self.presence = presence
        self.provider = provider
        self.receipt_secret = receipt_secret
        # Inbox items stored by the consumer's open transaction, pushed once it commits.
        self._pending: list[tuple[int, Notification]] = []

    def consumer(self) -> Consumer:
        """The events consumer (order events, offers, account creation)."""
        return Consumer(
            CONSUMER,
            rules.ORDER_TYPES | rules.ACCOUNT_TYPES | rules.CERTIFICATE_TYPES | rules.MEMBER_TYPES,
            self.handle,
            committed=self._committed,
            aborted=self._pending.clear,
        )

    # --- events -------------------------------------------------------------------

    async def handle(self, tx: Tx, event: Event) -> None:
        """React to one event, inside the consumer's transaction."""
        payload = event.payload
        now = datetime.now(UTC)
        if isinstance(payload, OrderChanged):
            facts = await store.order_facts(tx, payload.order_id, payload.worker_id)
            for intent in rules.intents(event.type, payload):
                await self._tell(
                    tx,
                    intent,
                    facts,
                    payload.order_id,
                    payload.window_start,
                    now=now,
                    key=partial(rules.event_key, event.id, intent.user_id, intent.kind),
                    event_id=event.id,
                )
            if event.type == "order.offered":
                await self._offers(tx, payload, facts, now)
            await self._reminders(tx, event.type, payload, facts, now)
        elif isinstance(payload, CertificateExpiring):
            for intent in rules.intents(event.type, payload):
                who = await store.recipient(tx, intent.user_id)
                zh = who is None or language(who.language) == "zh"
                await self._tell(
                    tx,
                    intent,
                    None,
                    None,
                    None,
                    now=now,
                    key=partial(rules.event_key, event.id, intent.user_id, intent.kind),
                    event_id=event.id,
                    extra={
                        "certificate": payload.name_zh if zh else payload.name_en,
                        "expires_on": payload.expires_on.isoformat(),
                        "days": str(max(0, (payload.expires_on - now.date()).days)),
                    },
                )
        elif isinstance(payload, MemberLevelChanged):
            for intent in rules.intents(event.type, payload):
                who = await store.recipient(tx, intent.user_id)
                zh = who is None or language(who.language) == "zh"
                await self._tell(
                    tx,
                    intent,
                    None,
                    None,
                    None,
                    now=now,
                    key=partial(rules.event_key, event.id, intent.user_id, intent.kind),
                    event_id=event.id,
                    extra={"level": payload.name_zh if zh else payload.name_en},
                )
        elif isinstance(payload, AccountChanged):
            for intent in rules.intents(event.type, payload):
                await self._tell(
                    tx,
                    intent,
                    None,
                    None,
                    None,
                    now=now,
                    key=partial(rules.event_key, event.id, intent.user_id, intent.kind),
                    event_id=event.id,
                )

    async def _tell(
        self,
        tx: Tx,
        intent: rules.Intent,
        facts: store.OrderFacts | None,
        order_id: int | None,
        window_start: datetime | None,
        *,
        now: datetime,
        key: Callable[[rules.Channel], str],
        event_id: int | None,
        sms_if_quiet: bool = True,
        extra: dict[str, str] | None = None,
    ) -> Notification | None:
        """Put it in the user's inbox, push it, and queue its SMS if they want one."""
        who = await store.recipient(tx, intent.user_id)
        if who is None or not who.active:
            return None
        lang = language(who.language)
        tz = rules.zone(facts.timezone if facts else who.timezone)
        values = {
            "order_id": str(order_id or ""),
            "service": (facts.service_zh if lang == "zh" else facts.service_en) if facts else "",
            "worker": (facts.worker_name or ("师傅" if lang == "zh" else "Your pro"))
            if facts
            else "",
            "time": rules.local_time(window_start, tz, lang),
            **(extra or {}),
        }
        title, body = inbox_text(intent.kind, lang, values)
        note = await store.add_to_inbox(
            tx,
            user_id=who.user_id,
            key=key("inbox"),
            kind=intent.kind,
            event_id=event_id,
            order_id=order_id,
            title=title,
            body=body,
        )
        if note is not None:
            await self._push(who.user_id, note)
        template = sms_template(intent.kind, lang)
        if template is None or not rules.sms_wanted(intent.kind, who.sms):
            return note
        held = rules.held_until(now, who.quiet, rules.zone(who.timezone))
        if held is not None and not sms_if_quiet:
            return note  # an offer held till morning is no offer
        await self.queue_sms(
            tx,
            key=key("sms"),
            user_id=who.user_id,
            phone=who.phone,
            template_code=template,
            params=sms_params(template, values),
            not_before=held or now,
        )
        return note

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
    ) -> int | None:
        """Record an SMS and defer its sending job, in the caller's transaction."""
        message_id = await store.queue_sms(
            tx,
            key=key,
            user_id=user_id,
            phone=phone,
            template_code=template_code,
            params=params,
            not_before=not_before,
        )
        if message_id is not None:
            await jobs_store.defer(
                tx,
                SEND_TASK,
                {"message_id": message_id},
                at=not_before,
                queueing_lock=f"sms:{message_id}",
                queue=QUEUE,
            )
        return message_id

    async def _push(self, user_id: int, note: Notification) -> None:
        """Push the item to the user's sockets once its transaction has committed."""
        self._pending.append((user_id, note))

    async def _committed(self) -> None:
        """The consumer's transaction committed: push what it stored, in order."""
        pending, self._pending[:] = list(self._pending), []
        for user_id, note in pending:
            await self._publish(user_id, note)

    async def _publish(self, user_id: int, note: Notification) -> None:
        message = {"type": "notification", "notification": note}
        try:
            await self.stores.redis.publish(
                self.stores.keys.user_channel(user_id), orjson.dumps(message, default=_builtins)
            )
        except RedisError as e:  # the inbox has it; the socket's snapshot will count it
            log.warning("live push of notification %s to user %s failed: %s", note.id, user_id, e)

    async def _offers(
        self, tx: Tx, order: OrderChanged, facts: store.OrderFacts, now: datetime
    ) -> None:
        """Workers whose socket is closed hear of their offer by SMS (and in the inbox)."""
        for offer_id, worker_id in await store.pending_offers(tx, order.order_id):
            if await self._online(worker_id):
                continue  # the socket got the offer (dispatch.offers.make_offers)
            await self._tell(
                tx,
                rules.Intent(worker_id, "offer"),
                facts,
                order.order_id,
                order.window_start,
                now=now,
                key=partial(rules.offer_key, offer_id),
                event_id=None,
                sms_if_quiet=False,
            )

    async def _online(self, worker_id: int) -> bool:
        if self.presence is None:
            return False
        try:
            return await self.presence.worker_online(worker_id)
        except RedisError as e:  # unknown: a second message beats a missed offer
            log.warning("presence of worker %s unknown (%s): telling them by SMS", worker_id, e)
            return False

    async def _reminders(
        self, tx: Tx, event_type: str, order: OrderChanged, facts: store.OrderFacts, now: datetime
    ) -> None:
        """Place, move or remove a scheduled order's reminder jobs."""
        if order.kind != "scheduled" or order.window_start is None:
            return
        if event_type in rules.ENDS_REMINDERS or event_type == "order.rescheduled":
            for which in ("eve", "hour"):
                await jobs_store.cancel_waiting(
                    tx, queueing_lock=rules.reminder_lock(order.order_id, which)
                )
        if event_type in rules.SETS_REMINDERS:
            times = rules.reminder_times(order.window_start, rules.zone(facts.timezone), now=now)
            for which, at in times.items():
                await jobs_store.defer(
                    tx,
                    REMIND_TASK,
                    {
                        "order_id": order.order_id,
                        "which": which,
                        "window_start": order.window_start.isoformat(),
                    },
                    at=at,
                    queueing_lock=rules.reminder_lock(order.order_id, which),
                    queue=QUEUE,
                )

    # --- jobs ---------------------------------------------------------------------

    async def remind(
        self, order_id: int, which: rules.Reminder, window_start: datetime, *, now: datetime
    ) -> int:
        """The reminder job: tell the customer (and every worker of the crew holding the
        order) about the service if it is still due at ``window_start``; how many were told."""
        told = 0
        async with self.stores.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT customer_id, worker_id, status, window_start, "
                "coalesce((SELECT array_agg(c.worker_id ORDER BY c.seat) FROM order_crew c "
                "WHERE c.order_id = o.id AND c.released_at IS NULL), '{}') AS crew "
                "FROM orders o WHERE id = $1",
                order_id,
            )
            if row is None or row["status"] not in OPEN_STATUSES:
                return 0
            if row["window_start"] is None or row["window_start"] != window_start:
                return 0  # moved: the job for the new time does it
            facts = await store.order_facts(conn, order_id, row["worker_id"])
            kind = "reminder_eve" if which == "eve" else "reminder_hour"
            for user_id in rules.reminded(row["customer_id"], row["worker_id"], row["crew"]):
                note = await self._tell(
                    conn,
                    rules.Intent(user_id, kind),
                    facts,
                    order_id,
                    window_start,
                    now=now,
                    key=partial(rules.reminder_key, order_id, which, window_start, user_id),
                    event_id=None,
                )
                told += note is not None
        return told

    async def send_sms(self, message_id: int, *, attempt: int, now: datetime) -> str:
        """The sending job: hand a queued SMS to the provider; what became of it.
        Raises :class:`SmsFailed` when it should be tried again."""
        message = await store.sms_message(self.stores.pool, message_id)
        if message is None or message.status != "queued":
            return "done already"
        if self.provider is None:
            raise SmsFailed("NoProvider", "no SMS provider is configured", retryable=True)
        try:
            biz_id = await self.provider.send(
                phone=message.phone,
                template_code=message.template_code,
                params=message.params,
                out_id=str(message.id),
            )
        except SmsFailed as e:
            final = not e.retryable or attempt + 1 >= SMS_MAX_ATTEMPTS
            await store.sms_attempt_failed(self.stores.pool, message_id, str(e), final=final)
            if final:
                log.warning("SMS %s given up: %s", message_id, e)
                return "failed"
            raise
        await store.sms_sent(self.stores.pool, message_id, biz_id, now)
        return "sent"

    # --- receipts -----------------------------------------------------------------

    async def receipts(self, body: bytes, *, timestamp: str, signature: str, now: int) -> int:
        """Delivery receipts posted by the gateway; how many were ours. Verified by
        signature and time; a repeated receipt changes nothing."""
        wrong = receipt_ok(self.receipt_secret, timestamp, signature, body, now=now)
        if wrong is not None:
            raise BadReceipt(wrong, field="x-sms-signature")
        try:
            reports = orjson.loads(body)
            if not isinstance(reports, list):
                raise ValueError
            items = [(str(r["biz_id"]), str(r["out_id"]), bool(r["success"])) for r in reports]
        except (ValueError, KeyError, TypeError):
            raise ReceiptRejected(
                "a receipt is a JSON list of {biz_id, out_id, success, …}", field="body"
            ) from None
        at = datetime.fromtimestamp(now, UTC)
        found = 0
        async with self.stores.pool.acquire() as conn, conn.transaction():
            for biz_id, out_id, delivered in items:
                found += await store.sms_reported(conn, biz_id, out_id, delivered, at)
        if items and not found:
            raise ReceiptRejected("no SMS of ours has this biz_id and out_id", field="body")
        return found

    # --- the inbox ----------------------------------------------------------------

    async def read(self, user_id: int, note_id: int, *, now: datetime) -> Notification:
        """Mark one of the user's items read."""
        note = await store.mark_read(self.stores.pool, user_id, note_id, now)
        if note is None:
            raise NotificationNotFound(f"no notification {note_id} in your inbox", field="id")
        return note


def _builtins(value: object) -> object:
    import msgspec

    return msgspec.to_builtins(value)
