"""The order lifecycle table: every status × action × actor, allowed actions, cancellation fees."""

from __future__ import annotations

from collections import deque
from typing import get_args

import pytest

from dispatch.lifecycle import (
    BEFORE_SERVICE,
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    WHO,
    Action,
    Actor,
    IllegalTransition,
    NotYourAction,
    Status,
    allowed_actions,
    cancellation_fee,
    next_status,
)

ACTIONS: tuple[Action, ...] = get_args(Action)
ACTORS: tuple[Actor, ...] = get_args(Actor)
STAFF: frozenset[Actor] = frozenset({"dispatcher", "admin", "system"})

# The lifecycle as documented, written out independently of the product's table.
EXPECTED: dict[tuple[Status, Action], Status] = {
    ("created", "confirm"): "confirmed",
    ("created", "cancel"): "cancelled",
    ("created", "request_payment"): "awaiting_payment",  # a prepaid service: 待支付
    ("awaiting_payment", "pay"): "confirmed",  # a verified payment
    ("awaiting_payment", "cancel"): "cancelled",  # the customer, or closed unpaid
    ("confirmed", "dispatch"): "dispatching",
    ("confirmed", "assign"): "assigned",
    ("confirmed", "cancel"): "cancelled",
    ("confirmed", "reschedule"): "confirmed",
    ("dispatching", "offer"): "offered",
    ("dispatching", "assign"): "assigned",
    ("confirmed", "fail"): "failed",  # nobody could be offered it in time
    ("dispatching", "fail"): "failed",
    ("dispatching", "cancel"): "cancelled",
    ("dispatching", "reschedule"): "confirmed",
    ("offered", "decline"): "dispatching",
    ("offered", "assign"): "assigned",
    ("offered", "fail"): "failed",
    ("offered", "cancel"): "cancelled",
    ("offered", "reschedule"): "confirmed",
    ("assigned", "unassign"): "dispatching",
    ("assigned", "depart"): "en_route",
    ("assigned", "arrive"): "arrived",
    ("assigned", "cancel"): "cancelled",
    ("assigned", "reschedule"): "confirmed",
    ("en_route", "unassign"): "dispatching",
    ("en_route", "arrive"): "arrived",
    ("en_route", "cancel"): "cancelled",
    ("arrived", "start"): "in_service",
    ("arrived", "cancel"): "cancelled",
    ("in_service", "complete"): "completed",
}
WORKER_OR_STAFF: frozenset[Actor] = frozenset({"worker", *STAFF})
EXPECTED_WHO: dict[Action, frozenset[Actor]] = {
    "confirm": frozenset({"customer", "system", "admin"}),
    "request_payment": frozenset({"system"}),
    "pay": frozenset({"system"}),
    "dispatch": STAFF,
    "offer": STAFF,
    "decline": WORKER_OR_STAFF,
    "assign": WORKER_OR_STAFF,
    "unassign": WORKER_OR_STAFF,
    "depart": WORKER_OR_STAFF,
    "arrive": WORKER_OR_STAFF,
    "start": WORKER_OR_STAFF,
    "complete": WORKER_OR_STAFF,
    "cancel": frozenset({"customer", *STAFF}),
    "fail": STAFF,
    "reschedule": frozenset({"customer", *STAFF}),
}

HAPPY: list[tuple[Action, Actor, Status]] = [
    ("confirm", "system", "confirmed"),
    ("dispatch", "system", "dispatching"),
    ("offer", "system", "offered"),
    ("assign", "worker", "assigned"),
    ("depart", "worker", "en_route"),
    ("arrive", "worker", "arrived"),
    ("start", "worker", "in_service"),
    ("complete", "worker", "completed"),
]
# Every way to completion passes these, in this order; the other happy statuses are optional.
MILESTONES: tuple[Status, ...] = (
    "created",
    "confirmed",
    "assigned",
    "arrived",
    "in_service",
    "completed",
)
OPTIONAL: tuple[Status, ...] = ("dispatching", "offered", "en_route")


def _possible(status: Status) -> str:
    legal = sorted(a for (s, a) in EXPECTED if s == status)
    return ", ".join(legal) if legal else "nothing (it is final)"


def _reachable(start: Status, avoid: frozenset[Status]) -> set[Status]:
    seen = {start}
    todo = deque([start])
    while todo:
        here = todo.popleft()
        for (s, _), to in TRANSITIONS.items():
            if s == here and to not in seen and to not in avoid:
                seen.add(to)
                todo.append(to)
    return seen


def test_the_table_is_the_documented_lifecycle() -> None:
    """TRANSITIONS and WHO are exactly the documented lifecycle; every action has its actors."""
    assert TRANSITIONS == EXPECTED
    assert WHO == EXPECTED_WHO
    assert set(WHO) == set(ACTIONS)
    assert set(STATUSES) == {s for s, _ in EXPECTED} | set(EXPECTED.values()) | {"created"}
    assert not any(s in TERMINAL for s, _ in TRANSITIONS)


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(("status", "action"), [(s, a) for s in STATUSES for a in ACTIONS])
def test_every_status_action_and_actor(status: Status, action: Action, actor: Actor) -> None:
    """A legal pair goes to the table's status for its actors and is NotYourAction for others; an illegal pair is IllegalTransition naming the status and what is possible."""
    to = EXPECTED.get((status, action))
    if to is None:
        with pytest.raises(IllegalTransition) as illegal:
            next_status(status, action, actor)
        assert illegal.value.current == status
        assert illegal.value.code == "illegal_transition"
        assert illegal.value.field == "status"
        assert illegal.value.message == (
            f"cannot {action} an order that is {status}; possible now: {_possible(status)}"
        )
        if status in TERMINAL:
            assert "nothing" in illegal.value.message
    elif actor in EXPECTED_WHO[action]:
        assert next_status(status, action, actor) == to
    else:
        with pytest.raises(NotYourAction) as forbidden:
            next_status(status, action, actor)
        assert forbidden.value.code == "action_forbidden"
        assert forbidden.value.message == f"a {actor} may not {action} an order"


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("status", STATUSES)
def test_allowed_actions_match_the_table(status: Status, actor: Actor) -> None:
    """allowed_actions lists, sorted, exactly the actions legal in the status for that actor."""
    expected = sorted(a for (s, a) in EXPECTED if s == status and actor in EXPECTED_WHO[a])
    got = allowed_actions(status, actor)
    assert got == expected
    for action in got:
        assert next_status(status, action, actor) == EXPECTED[(status, action)]


@pytest.mark.parametrize(
    ("status", "actor", "expected"),
    [
        ("created", "customer", ["cancel", "confirm"]),
        ("assigned", "customer", ["cancel", "reschedule"]),
        ("assigned", "worker", ["arrive", "depart", "unassign"]),
        ("arrived", "worker", ["start"]),
        ("arrived", "customer", ["cancel"]),
        ("in_service", "customer", []),
        ("completed", "admin", []),
        ("cancelled", "system", []),
        ("failed", "dispatcher", []),
    ],
)
def test_allowed_actions_examples(status: Status, actor: Actor, expected: list[Action]) -> None:
    """Spot checks: a customer cannot stop a job in service; a final order allows nothing."""
    assert allowed_actions(status, actor) == expected


def test_the_happy_path_walks_to_completion() -> None:
    """created → confirmed → dispatching → offered → assigned → en_route → arrived → in_service → completed."""
    status: Status = "created"
    for action, actor, to in HAPPY:
        status = next_status(status, action, actor)
        assert status == to
    assert status in TERMINAL
    assert allowed_actions(status, "admin") == []


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        (MILESTONES[i], MILESTONES[j])
        for i in range(1, len(MILESTONES))
        for j in range(i, len(MILESTONES))
    ],
)
def test_milestones_are_reachable_only_in_order(earlier: Status, later: Status) -> None:
    """No route from created reaches a later milestone without passing the earlier one."""
    assert later not in _reachable("created", frozenset({earlier}))


@pytest.mark.parametrize("skipped", OPTIONAL)
def test_optional_steps_may_be_skipped(skipped: Status) -> None:
    """Dispatching, offering and travelling are optional: completion stays reachable without them."""
    assert "completed" in _reachable("created", frozenset({skipped}))


@pytest.mark.parametrize(
    ("target", "only_from"),
    [
        ("completed", {("in_service", "complete")}),
        ("in_service", {("arrived", "start")}),
        ("arrived", {("assigned", "arrive"), ("en_route", "arrive")}),
        ("en_route", {("assigned", "depart")}),
        (
            "assigned",
            {("confirmed", "assign"), ("dispatching", "assign"), ("offered", "assign")},
        ),
    ],
)
def test_each_step_has_only_its_own_entrances(
    target: Status, only_from: set[tuple[Status, Action]]
) -> None:
    """A happy-path status is entered only by its own action from the step(s) just before it."""
    assert {key for key, to in TRANSITIONS.items() if to == target} == only_from


NOW = 1_750_000_000
H = 3600


@pytest.mark.parametrize(
    ("status", "by", "price", "window_start_s", "fee", "reason"),
    [
        *[
            (s, "customer", 15000, None, 0, "free: no worker had committed to it yet")
            for s in ("created", "confirmed", "dispatching", "offered")
        ],
        *[
            (s, by, 15000, None, 0, "free: cancelled by staff")
            for s in BEFORE_SERVICE
            for by in ("dispatcher", "admin", "system")
        ],
        ("assigned", "customer", 15000, NOW + 2 * H, 0, "free: more than 2 hours before"),
        ("assigned", "customer", 15000, NOW + 3 * H, 0, "free: more than 2 hours before"),
        (
            "assigned",
            "customer",
            15000,
            NOW + 2 * H - 1,
            3000,
            "20% of the price: the worker had committed",
        ),
        (
            "assigned",
            "customer",
            15000,
            NOW - H,
            3000,
            "20% of the price: the worker had committed",
        ),
        ("assigned", "customer", 15000, None, 3000, "20% of the price: the worker had committed"),
        ("en_route", "customer", 15000, None, 7500, "50% of the price: the worker had travelled"),
        (
            "en_route",
            "customer",
            15000,
            NOW + 24 * H,
            7500,
            "50% of the price: the worker had travelled",
        ),
        ("arrived", "customer", 15000, None, 7500, "50% of the price: the worker had travelled"),
        (
            "arrived",
            "customer",
            15000,
            NOW + 24 * H,
            7500,
            "50% of the price: the worker had travelled",
        ),
        ("assigned", "customer", 0, None, 0, "20%"),
        ("en_route", "customer", 0, None, 0, "50%"),
    ],
)
def test_cancellation_fee_table(
    status: Status, by: Actor, price: int, window_start_s: int | None, fee: int, reason: str
) -> None:
    """Free before assignment, for staff and ≥ 2 h before the window; 20% once assigned; 50% en route or arrived."""
    got, why = cancellation_fee(
        status, by=by, price_minor=price, now_s=NOW, window_start_s=window_start_s
    )
    assert got == fee
    assert isinstance(got, int)
    assert why.startswith(reason)


@pytest.mark.parametrize(
    ("status", "price", "fee"),
    [
        ("assigned", 1, 0),  # 0.2
        ("assigned", 3, 1),  # 0.6
        ("assigned", 1234, 247),  # 246.8
        ("assigned", 1232, 246),  # 246.4
        ("en_route", 1, 1),  # 0.5: half a fen rounds up
        ("en_route", 5, 3),  # 2.5
        ("en_route", 7, 4),  # 3.5
        ("arrived", 15001, 7501),  # 7500.5
        ("arrived", 99_999_999, 50_000_000),  # 49_999_999.5
    ],
)
def test_cancellation_fee_rounds_to_the_nearest_fen_half_up(
    status: Status, price: int, fee: int
) -> None:
    """The fee is the nearest whole minor unit, halves rounded up (四舍五入), the same for odd and even prices."""
    got, _ = cancellation_fee(
        status, by="customer", price_minor=price, now_s=NOW, window_start_s=None
    )
    assert got == fee
