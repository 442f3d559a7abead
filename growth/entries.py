"""The ledger entries growth posts (pure: built here, posted by ``growth.service`` in the
transaction of the payment, refund or completion they follow). docs/growth.md draws them.

A point is worth one fen at the default rate; the points liability per customer
(``points_liability:<customer>``) holds the value of their points.
"""

from __future__ import annotations

from ledger import rules as lr
from ledger.rules import Entry, Line, credit, debit


def discount_paid(
    order_id: int,
    customer_id: int,
    *,
    coupon_fen: int,
    points_fen: int,
    payment: str,
    note: str = "",
) -> Entry | None:
    """At capture: the platform pays the coupon (subsidy expense) and the points spent
    (out of the points liability) into the order's funds, beside the customer's cash, so
    the order holds its full price (``note``: a late capture's, and what it honoured)."""
    lines: list[Line] = []
    if coupon_fen > 0:
        lines.append(debit(lr.SUBSIDY_EXPENSE, coupon_fen))
    if points_fen > 0:
        lines.append(debit(lr.points_liability(customer_id), points_fen))
    if not lines:
        return None
    lines.append(credit(lr.order_funds(order_id), coupon_fen + points_fen))
    return Entry(
        key=f"growth:discount:{order_id}",
        kind="growth.discount",
        order_id=order_id,
        lines=tuple(lines),
        memo=f"coupon {coupon_fen} fen, points {points_fen} fen (trade {payment})"
        + (f"; {note}" if note else ""),
        data={"coupon_fen": coupon_fen, "points_fen": points_fen},
    )


def discount_back(
    order_id: int, customer_id: int, out_refund_no: str, *, coupon_fen: int, points_fen: int
) -> Entry | None:
    """A refund's share of the discount goes back: the subsidy is reversed and the points
    return to the customer's liability, out of the order's funds."""
    lines: list[Line] = []
    if coupon_fen > 0:
        lines.append(credit(lr.SUBSIDY_EXPENSE, coupon_fen))
    if points_fen > 0:
        lines.append(credit(lr.points_liability(customer_id), points_fen))
    if not lines:
        return None
    lines.insert(0, debit(lr.order_funds(order_id), coupon_fen + points_fen))
    return Entry(
        key=f"growth:refund:{out_refund_no}",
        kind="growth.discount_back",
        order_id=order_id,
        lines=tuple(lines),
        memo=f"refund {out_refund_no}: coupon {coupon_fen} fen, points {points_fen} fen back",
        data={"coupon_fen": coupon_fen, "points_fen": points_fen},
    )


def points_earned(
    order_id: int, customer_id: int, points_fen: int, *, key: str | None = None
) -> Entry:
    """Points given for a completed order: an expense, owed to the customer until spent
    (``key``: a later payment's, ``<order>:<payment>``; the completion's is the order id)."""
    return Entry(
        key=f"growth:earn:{key or order_id}",
        kind="growth.points_earned",
        order_id=order_id,
        lines=(
            debit(lr.POINTS_EXPENSE, points_fen),
            credit(lr.points_liability(customer_id), points_fen),
        ),
        memo=f"points for order {order_id}",
    )


def points_taken_back(
    order_id: int, customer_id: int, out_refund_no: str, points_fen: int
) -> Entry:
    """Points earned on an order, taken back in proportion to a refund of it."""
    return Entry(
        key=f"growth:unearn:{out_refund_no}",
        kind="growth.points_reversed",
        order_id=order_id,
        lines=(
            debit(lr.points_liability(customer_id), points_fen),
            credit(lr.POINTS_EXPENSE, points_fen),
        ),
        memo=f"refund {out_refund_no}: points earned on order {order_id} taken back",
    )
