"""The pure rules of notifications: recipients, preferences, quiet hours, reminders,
keys, templates and the gateway's signatures (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from events.types import AccountChanged, OrderChanged
from notifications import rules
from notifications.errors import InvalidSetting
from notifications.signing import receipt_ok, receipt_signature, request_signature
from notifications.templates import (
    INBOX,
    SMS_OF_KIND,
    SMS_TEMPLATES,
    inbox_text,
    render_sms,
    sms_params,
    sms_template,
)

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def _order(**kw: object) -> OrderChanged:
    base: dict[str, object] = {
        "order_id": 42,
        "city_id": "shenzhen",
        "customer_id": 7,
        "kind": "scheduled",
        "service_code": "clean",
        "status": "assigned",
        "previous": "confirmed",
        "action": "assign",
        "actor": "dispatcher",
        "actor_id": 3,
        "version": 3,
        "worker_id": 9,
        "previous_worker_id": None,
        "window_start": T0,
        "window_end": T0 + timedelta(hours=2),
        "previous_window_start": None,
        "at": T0 - timedelta(days=1),
    }
    base.update(kw)
    return OrderChanged(**base)  # type: ignore[arg-type]


def test_an_assignment_tells_the_customer_and_the_worker() -> None:
    """order.assigned is told to the customer as order_assigned and to the worker as job_assigned."""
    assert rules.intents("order.assigned", _order()) == [
        rules.Intent(7, "order_assigned"),
        rules.Intent(9, "job_assigned"),
    ]


def test_a_cancel_tells_the_worker_who_had_the_job() -> None:
    """A cancel after an unassign still reaches the worker who held the job."""
    got = rules.intents("order.cancelled", _order(worker_id=None, previous_worker_id=11))
    assert got == [rules.Intent(7, "order_cancelled"), rules.Intent(11, "job_cancelled")]


def test_a_crew_assignment_tells_every_member_once() -> None:
    """order.assigned of a crew order tells the customer once and every member (lead first, the lead named twice told once) job_assigned."""
    got = rules.intents("order.assigned", _order(worker_id=9, crew=[9, 12, 13]))
    assert got == [
        rules.Intent(7, "order_assigned"),
        rules.Intent(9, "job_assigned"),
        rules.Intent(12, "job_assigned"),
        rules.Intent(13, "job_assigned"),
    ]


def test_a_cancel_tells_every_member_who_held_the_crew_order() -> None:
    """A cancel of a crew order tells every member; after an unassign released the crew, every member who held it."""
    held = _order(worker_id=9, crew=[9, 12], previous_worker_id=9, previous_crew=[9, 12])
    assert rules.intents("order.cancelled", held) == [
        rules.Intent(7, "order_cancelled"),
        rules.Intent(9, "job_cancelled"),
        rules.Intent(12, "job_cancelled"),
    ]
    released = _order(worker_id=None, crew=[], previous_worker_id=9, previous_crew=[9, 12])
    assert [i.user_id for i in rules.intents("order.cancelled", released)] == [7, 9, 12]


def test_a_crew_change_tells_the_joining_and_the_leaving_member_only() -> None:
    """order.crew_changed tells the newcomer crew_joined and the one replaced crew_left (the lead's seat too); the customer and the staying members hear nothing."""
    assert "order.crew_changed" in rules.ORDER_TYPES
    member = _order(
        action="crew_change", worker_id=9, crew=[9, 14], previous_worker_id=9, previous_crew=[9, 12]
    )
    assert rules.intents("order.crew_changed", member) == [
        rules.Intent(14, "crew_joined"),
        rules.Intent(12, "crew_left"),
    ]
    lead = _order(
        action="crew_change",
        worker_id=14,
        crew=[14, 12],
        previous_worker_id=9,
        previous_crew=[9, 12],
    )
    assert rules.intents("order.crew_changed", lead) == [
        rules.Intent(14, "crew_joined"),
        rules.Intent(9, "crew_left"),
    ]
    assert rules.category("crew_joined") == rules.category("crew_left") == "order"


def test_a_single_worker_order_tells_its_worker_as_before() -> None:
    """Without a crew the worker notices are the lead's alone (and a crew change tells nobody)."""
    assert rules.members(9, []) == [9]
    assert rules.members(None, []) == []
    assert rules.intents("order.cancelled", _order(previous_worker_id=9)) == [
        rules.Intent(7, "order_cancelled"),
        rules.Intent(9, "job_cancelled"),
    ]
    assert rules.intents("order.crew_changed", _order(previous_worker_id=9)) == []


def test_a_reminder_tells_the_customer_and_every_member() -> None:
    """Reminders go to the customer, then the lead and the rest of the crew once each; an unassigned order reminds the customer only."""
    assert rules.reminded(7, 9, [9, 12, 13]) == [7, 9, 12, 13]
    assert rules.reminded(7, 9, []) == [7, 9]
    assert rules.reminded(7, None, []) == [7]


def test_events_without_a_message_tell_nobody() -> None:
    """order.confirmed, a dispatcher-only event and a staff account tell nobody."""
    assert rules.intents("order.confirmed", _order()) == []
    assert rules.intents("order.dispatching", _order()) == []
    staff = AccountChanged(user_id=1, roles=["dispatcher"], status="active", previous=None, at=T0)
    assert rules.intents("account.created", staff) == []
    new = AccountChanged(user_id=2, roles=["customer"], status="active", previous=None, at=T0)
    assert rules.intents("account.created", new) == [rules.Intent(2, "welcome")]


def test_sms_choice_falls_back_to_the_category_default() -> None:
    """A user's choice for a category wins; without one, the default (account SMS off, others on)."""
    assert rules.sms_wanted("order_arrived", {}) is True
    assert rules.sms_wanted("order_arrived", {"order": False}) is False
    assert rules.sms_wanted("reminder_eve", {"order": False}) is True
    assert rules.sms_wanted("welcome", {}) is False
    with pytest.raises(InvalidSetting) as info:
        rules.check_choices({"promo": True})
    assert info.value.field == "sms.promo"


@pytest.mark.parametrize(
    ("local", "quiet", "until"),
    [
        ("23:30", ("22:00", "08:00"), (1, "08:00")),  # evening: ends tomorrow morning
        ("06:15", ("22:00", "08:00"), (0, "08:00")),  # early morning: ends today
        ("08:00", ("22:00", "08:00"), None),  # the end itself is not quiet
        ("12:00", ("22:00", "08:00"), None),
        ("13:00", ("12:30", "14:00"), (0, "14:00")),  # a nap, not across midnight
    ],
)
def test_quiet_hours_hold_until_their_end(
    local: str, quiet: tuple[str, str], until: tuple[int, str] | None
) -> None:
    """An SMS in quiet hours waits until they end, in the user's time zone."""
    day = datetime(2026, 12, 7, tzinfo=SH)
    hh, mm = map(int, local.split(":"))
    now = day.replace(hour=hh, minute=mm).astimezone(UTC)
    q = rules.QuietHours(rules.parse_hhmm(quiet[0], "s"), rules.parse_hhmm(quiet[1], "e"))
    got = rules.held_until(now, q, SH)
    if until is None:
        assert got is None
    else:
        eh, em = map(int, until[1].split(":"))
        want = (day + timedelta(days=until[0])).replace(hour=eh, minute=em).astimezone(UTC)
        assert got == want
    assert rules.held_until(now, None, SH) is None


@pytest.mark.parametrize("raw", ["8", "24:00", "12:60", "ab:cd", "12:5"])
def test_times_of_day_are_checked(raw: str) -> None:
    """A quiet-hours time that is not HH:MM within a day is refused naming the field."""
    with pytest.raises(InvalidSetting) as info:
        rules.parse_hhmm(raw, "quiet_hours.start")
    assert info.value.field == "quiet_hours.start"


def test_reminders_fall_the_evening_before_and_an_hour_before() -> None:
    """10:00 on the 7th: reminders at 20:00 on the 6th and 09:00 on the 7th (Shanghai); past ones are left out."""
    got = rules.reminder_times(T0, SH, now=T0 - timedelta(days=3))
    assert got == {
        "eve": datetime(2026, 12, 6, 20, 0, tzinfo=SH).astimezone(UTC),
        "hour": T0 - timedelta(hours=1),
    }
    assert list(rules.reminder_times(T0, SH, now=T0 - timedelta(hours=5))) == ["hour"]
    assert rules.reminder_times(T0, SH, now=T0 - timedelta(minutes=30)) == {}
    early = datetime(2026, 12, 7, 20, 30, tzinfo=SH)  # 20:30: the evening before is a day ahead
    assert set(rules.reminder_times(early, SH, now=T0 - timedelta(days=3))) == {"eve", "hour"}


def test_keys_name_the_effect() -> None:
    """Keys differ by event, recipient, kind and channel, and reminder keys by window."""
    keys = {
        rules.event_key(1, 7, "order_assigned", "inbox"),
        rules.event_key(1, 7, "order_assigned", "sms"),
        rules.event_key(1, 9, "job_assigned", "inbox"),
        rules.event_key(2, 7, "order_assigned", "inbox"),
        rules.reminder_key(42, "hour", T0, 7, "sms"),
        rules.reminder_key(42, "hour", T0 + timedelta(days=1), 7, "sms"),
        rules.offer_key(5, "sms"),
    }
    assert len(keys) == 7
    assert rules.reminder_lock(42, "eve") == "reminder:42:eve"


def test_every_template_renders_in_both_languages() -> None:
    """Every inbox kind has Chinese and English text; every SMS kind has a registered template in each language whose parameters come from the values."""
    values = {
        "order_id": "42",
        "service": "日常保洁",
        "time": "12月7日 10:00",
        "worker": "张师傅",
        "certificate": "健康证",
        "expires_on": "2027-01-05",
        "days": "30",
        "level": "金卡会员",
    }
    for kind in INBOX:
        for lang in ("zh", "en"):
            title, body = inbox_text(kind, lang, values)
            assert title
            assert "{" not in body
    for kind in SMS_OF_KIND:
        for lang in ("zh", "en"):
            code = sms_template(kind, lang)
            assert code in SMS_TEMPLATES
            assert "${" not in render_sms(code, sms_params(code, values))
    assert sms_template("order_started", "zh") is None
    assert inbox_text("order_arrived", "fr", values)[0] == "师傅已到达"  # Chinese by default


def test_local_time_reads_naturally() -> None:
    """Times are shown in the city's zone, in the reader's language; an instant order says 'soon'."""
    assert rules.local_time(T0, SH, "zh") == "12月7日 10:00"
    assert rules.local_time(T0, SH, "en") == "Dec 7 10:00"
    assert rules.local_time(None, SH, "zh") == "尽快"


def test_the_request_signature_matches_the_documented_example() -> None:
    """Alibaba Cloud's documented SendSms example (GET, secret testSecret) signs to zJDF+Lrzhj/ThnlvIToysFRq6t4=."""
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    assert request_signature(params, "testSecret", method="GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    assert request_signature({**params, "Signature": "x"}, "testSecret", method="GET") == (
        "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    )


def test_receipts_must_be_signed_and_fresh() -> None:
    """A receipt passes with its signature and a timestamp within 5 minutes; a changed body, an old time or another secret fail with a reason."""
    body = b'[{"biz_id":"1","out_id":"2","success":true}]'
    sig = receipt_signature("s3cret", 1000, body)
    assert receipt_ok("s3cret", "1000", sig, body, now=1100) is None
    assert receipt_ok("s3cret", "1000", sig, body + b" ", now=1100) is not None
    assert receipt_ok("s3cret", "1000", sig, body, now=1400) is not None
    assert receipt_ok("other", "1000", sig, body, now=1100) is not None
    assert receipt_ok("s3cret", "soon", sig, body, now=1100) is not None


def test_a_level_change_tells_the_customer_in_the_account_category() -> None:
    """member.level_changed: the customer is told member_up or member_down (category
    account: no SMS unless they asked for one)."""
    from events.types import MemberLevelChanged

    up = MemberLevelChanged(
        customer_id=7,
        old_level="regular",
        new_level="silver",
        direction="up",
        name_zh="银卡会员",
        name_en="Silver",
        points=1000,
        at=T0,
    )
    assert rules.intents("member.level_changed", up) == [rules.Intent(7, "member_up")]
    assert rules.category("member_down") == "account"
    assert sms_template("member_up", "zh") is None
