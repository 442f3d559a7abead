"""Number masking's rules, pure: when an order's customer and worker may call each other,
and for how long a binding is asked for.

A binding (AXB: the customer is A, the worker B, X the temporary number) exists while
the job is held by a worker and not over: from assignment until completion,
cancellation, failure or the worker's release. The provider is asked to end it by
itself at :func:`expires_at` too, in case our release never reaches it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# Statuses in which the customer and the job's worker may call each other.
CALLABLE = frozenset({"assigned", "en_route", "arrived", "in_service"})
# How long past the window's end (or now) the provider keeps a binding by itself.
PROVIDER_GRACE = timedelta(hours=4)
MIN_LIFETIME = timedelta(hours=1)


def wanted(status: str, worker_id: int | None) -> bool:
    """True if an order in ``status`` held by ``worker_id`` should have a binding."""
    return worker_id is not None and status in CALLABLE


def expires_at(now: datetime, window_end: datetime | None) -> datetime:
    """When the provider ends the binding by itself: the window's end (or now) plus
    :data:`PROVIDER_GRACE`, and at least :data:`MIN_LIFETIME` from now."""
    end = max(window_end or now, now) + PROVIDER_GRACE
    return max(end, now + MIN_LIFETIME)


def out_id(order_id: int, worker_id: int) -> str:
    """Our id of one binding (an order and its worker): a retried bind returns the same."""
    return f"o{order_id}w{worker_id}"


def is_mobile(phone: str) -> bool:
    """A mainland mobile number: 11 digits starting with 1."""
    return len(phone) == 11 and phone.isdigit() and phone.startswith("1")


# --- PIPL: export and deletion (docs/privacy.md) ------------------------------------------

# How long a deletion request waits (cancellable) before the account is anonymised.
COOLING_OFF = timedelta(days=7)
# Roles whose owner may delete their own account; staff and merchants are closed by an
# admin (their actions are part of others' records).
SELF_DELETABLE = frozenset({"customer", "worker"})
# What an anonymised account is called.
DELETED_NAME = "已注销用户"


def deletion_due(now: datetime, cooling_off: timedelta = COOLING_OFF) -> datetime:
    """When a deletion asked for at ``now`` is carried out."""
    return now + cooling_off


def deletion_refused(roles: tuple[str, ...], status: str, open_orders: list[int]) -> str | None:
    """Why this account may not ask for its deletion now (a code), or None."""
    if status != "active":
        return "account_not_active"
    if not set(roles) <= SELF_DELETABLE:
        return "staff_account"
    if open_orders:
        return "orders_open"
    return None
