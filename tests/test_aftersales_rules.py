"""After-sales' pure rules: the window, SLA deadlines and levels, resolutions and rulings,
claims, spot-check sampling and the questionnaire (no I/O; time and seed passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aftersales import rules
from aftersales.errors import (
    AlreadyRuled,
    ClaimState,
    InvalidAftersalesInput,
    OutsideWindow,
    TicketState,
)
from aftersales.rules import AftersalesParams, Resolution

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
P = AftersalesParams()


def test_a_ticket_is_opened_within_the_window_of_a_completed_order_only() -> None:
    """Inside the window: fine; at its end, after it, or on an order not completed: outside_window on order_id."""
    rules.check_window("completed", T0, now=T0 + timedelta(days=6, hours=23), window_days=7)
    for status, at in [
        ("completed", T0 + timedelta(days=7)),
        ("completed", T0 + timedelta(days=30)),
        ("in_service", T0),
    ]:
        with pytest.raises(OutsideWindow) as e:
            rules.check_window(status, T0, now=at, window_days=7)
        assert e.value.field == "order_id"
    with pytest.raises(OutsideWindow):
        rules.check_window("completed", None, now=T0, window_days=7)


def test_deadlines_and_escalation_levels_follow_the_clock() -> None:
    """Level 0 before the first-response deadline, 1 after it without a response, 2 after the resolution deadline; closed tickets 0."""
    first, resolution = rules.deadlines(T0, P)
    assert (first - T0, resolution - T0) == (timedelta(hours=2), timedelta(hours=48))

    def level(now: datetime, answered: datetime | None = None, status: str = "open") -> int:
        return rules.due_level(
            status=status,
            first_response_at=answered,
            first_response_due=first,
            resolution_due=resolution,
            now=now,
        )

    assert level(first - timedelta(seconds=1)) == 0
    assert level(first) == 1
    assert level(first + timedelta(hours=1), answered=T0 + timedelta(minutes=5)) == 0
    assert level(resolution) == 2
    assert level(resolution, answered=T0, status="in_progress") == 2
    assert level(resolution, status="resolved") == 0


def test_sla_timers_count_down_and_flag_a_breach() -> None:
    """Seconds left for each deadline; negative and breached once past; none once closed."""
    first, resolution = rules.deadlines(T0, P)
    s = rules.sla(
        status="open",
        first_response_at=None,
        first_response_due=first,
        resolution_due=resolution,
        now=T0 + timedelta(hours=3),
    )
    assert (s.first_response_left_s, s.resolution_left_s, s.breached) == (-3600, 45 * 3600, True)
    s = rules.sla(
        status="resolved",
        first_response_at=T0,
        first_response_due=first,
        resolution_due=resolution,
        now=T0,
    )
    assert (s.first_response_left_s, s.resolution_left_s, s.breached) == (None, None, False)


def test_a_resolution_names_its_bad_part() -> None:
    """Non-positive or float amounts, compensation over the cap, a warning without fault, fault without a worker, nothing given and no note: 422 naming the field."""
    cases = [
        (Resolution(refund_fen=0), "refund_fen"),
        (Resolution(compensation_fen=P.max_compensation_fen + 1), "compensation_fen"),
        (Resolution(warning=True, note="x"), "warning"),
        (Resolution(), "note"),
    ]
    for res, field in cases:
        with pytest.raises(InvalidAftersalesInput) as e:
            rules.check_resolution(res, P, has_worker=True)
        assert e.value.field == field
    with pytest.raises(InvalidAftersalesInput) as e:
        rules.check_resolution(Resolution(worker_at_fault=True, note="x"), P, has_worker=False)
    assert e.value.field == "worker_at_fault"
    ok = rules.check_resolution(Resolution(refund_fen=100, note="  ok "), P, has_worker=True)
    assert ok.note == "ok"


def test_a_dispute_is_ruled_once_and_a_ruling_for_the_worker_gives_nothing() -> None:
    """A second ruling is already_ruled; a ticket not disputed cannot be ruled; for the worker no refund; an unknown side 422."""
    with pytest.raises(AlreadyRuled):
        rules.check_ruling("disputed", True, "customer", Resolution())
    with pytest.raises(TicketState):
        rules.check_ruling("open", False, "customer", Resolution())
    with pytest.raises(InvalidAftersalesInput) as e:
        rules.check_ruling("disputed", False, "worker", Resolution(refund_fen=100))
    assert e.value.field == "in_favour"
    with pytest.raises(InvalidAftersalesInput):
        rules.check_ruling("disputed", False, "nobody", Resolution())
    rules.check_ruling("disputed", False, "split", Resolution(refund_fen=100))
    with pytest.raises(TicketState):
        rules.check_can_resolve("disputed")


def test_each_side_states_its_case_once() -> None:
    """The worker's second statement is refused; the customer may still state theirs."""
    rules.check_statement("in_progress", "customer", {"worker"})
    with pytest.raises(TicketState) as e:
        rules.check_statement("disputed", "worker", {"worker"})
    assert e.value.field == "text"
    with pytest.raises(TicketState):
        rules.check_statement("resolved", "customer", set())


def test_a_claim_moves_claimed_assessed_paid_or_rejected() -> None:
    """Claimed → assessed → paid; rejected from claimed or assessed; nothing after the end; assessments capped by the cover."""
    assert rules.claim_next("claimed", "assess") == "assessed"
    assert rules.claim_next("assessed", "pay") == "paid"
    assert rules.claim_next("assessed", "reject") == "rejected"
    for status, action in [("claimed", "pay"), ("paid", "reject"), ("rejected", "assess")]:
        with pytest.raises(ClaimState):
            rules.claim_next(status, action)
    assert rules.check_assessment(5000, 5000) == 5000
    with pytest.raises(InvalidAftersalesInput) as e:
        rules.check_assessment(5001, 5000)
    assert e.value.field == "assessed_fen"


def test_evidence_must_be_an_image_of_the_author_for_aftersales() -> None:
    """Another's file, a PDF, a file of another purpose: 422 naming photos[i]."""
    rules.check_photo(
        0, file_owner=7, purpose="aftersales_evidence", media_type="image/jpeg", author=7
    )
    for owner, purpose, media, msg in [
        (8, "aftersales_evidence", "image/jpeg", "of yours"),
        (7, "aftersales_evidence", "application/pdf", "must be an image"),
        (7, "certificate", "image/png", "aftersales_evidence"),
    ]:
        with pytest.raises(InvalidAftersalesInput) as e:
            rules.check_photo(2, file_owner=owner, purpose=purpose, media_type=media, author=7)
        assert e.value.field == "photos[2]"
        assert msg in e.value.message


def test_spot_check_sampling_is_reproducible_and_capped_per_worker() -> None:
    """The same seed gives the same sample whatever the input order; at most per_worker per worker; another seed may differ."""
    orders = [(i, 1 + i % 3) for i in range(1, 31)]
    a = rules.sample(orders, per_worker=2, seed=42)
    b = rules.sample(list(reversed(orders)), per_worker=2, seed=42)
    assert a == b
    assert sorted({w for _, w in a}) == [1, 2, 3]
    assert all(sum(1 for _, w in a if w == k) == 2 for k in (1, 2, 3))
    assert any(rules.sample(orders, per_worker=2, seed=s) != a for s in range(1, 10))
    assert rules.sample([(5, 9)], per_worker=3, seed=1) == [(5, 9)]
    assert rules.sample([], per_worker=3, seed=1) == []


def test_periods_are_whole_weeks_before_now() -> None:
    """The last whole 7-day period before now starts on a Monday and ends at or before now."""
    start, end = rules.period_of(datetime(2026, 12, 6, 10, 0, tzinfo=UTC), 7)
    assert (start, end) == (
        datetime(2026, 11, 23, tzinfo=UTC),
        datetime(2026, 11, 30, tzinfo=UTC),
    )
    assert start.weekday() == 0
    assert rules.seed_of(start) == int(start.timestamp())


def test_the_questionnaire_needs_every_answer_of_its_kind() -> None:
    """Missing, unknown or mistyped answers are 422 naming answers.<key>; the verdict passes only a clean call."""
    good: dict[str, object] = {
        "on_time": True,
        "as_described": True,
        "polite": True,
        "extra_charges": False,
        "satisfaction": 4,
    }
    assert rules.verdict(rules.check_answers(good)) is True
    assert rules.verdict(rules.check_answers(good | {"extra_charges": True})) is False
    assert rules.verdict(rules.check_answers(good | {"satisfaction": 2})) is False
    cases: list[tuple[dict[str, object], str]] = [
        ({k: v for k, v in good.items() if k != "polite"}, "answers.polite"),
        (good | {"mood": 3}, "answers.mood"),
        (good | {"on_time": "yes"}, "answers.on_time"),
        (good | {"satisfaction": 6}, "answers.satisfaction"),
        (good | {"satisfaction": True}, "answers.satisfaction"),
    ]
    for bad, field in cases:
        with pytest.raises(InvalidAftersalesInput) as e:
            rules.check_answers(bad)
        assert e.value.field == field


def test_params_refuse_nonsense() -> None:
    """A first-response deadline after the resolution one, a zero period: ValueError."""
    with pytest.raises(ValueError, match="first_response_s"):
        AftersalesParams(first_response_s=10, resolution_s=5)
    with pytest.raises(ValueError, match="spot_period_days"):
        AftersalesParams(spot_period_days=0)
