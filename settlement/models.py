"""What the settlement package answers: rules, wallets, earnings, withdrawals, reconciliations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

PayeeKind = Literal["worker", "merchant"]


@dataclass(frozen=True, slots=True)
class Payee:
    """Whose wallet: a worker or a merchant (a user id either way)."""

    kind: PayeeKind
    id: int

    @property
    def lock_key(self) -> str:
        """The advisory-lock name of the wallet."""
        return f"wallet:{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class RuleOut:
    """A commission rule as stored."""

    id: int
    city_id: str | None
    category: str | None
    service_code: str | None
    merchant_id: int | None
    rate_bps: int
    fixed_fen: int
    min_fen: int
    max_fen: int | None
    note: str
    active: bool
    specificity: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CommissionOut:
    """A commission as computed for an order (a quote, or the snapshot taken at payment)."""

    order_id: int | None
    rule_id: int | None
    rate_bps: int
    fixed_fen: int
    min_fen: int
    max_fen: int | None
    base_fen: int
    commission_fen: int
    payee_fen: int
    snapshot_at: datetime | None
    merchant_id: int | None = None  # the merchant the snapshot was taken for
    rules_at: datetime | None = None  # whose rules it applies: those in force then
    resnapshot_at: datetime | None = None  # when it was last taken again (the merchant changed)


@dataclass(frozen=True, slots=True)
class Wallet:
    """A wallet's balances in fen: available (withdrawable), frozen (in the after-sales
    window), withdrawing (requested or being paid out); owed (fines beyond the balance,
    recovered from the next earnings) and the fines and bonuses booked so far (net of
    fines reversed on appeal)."""

    payee_kind: PayeeKind
    payee_id: int
    available_fen: int
    frozen_fen: int
    withdrawing_fen: int
    withdrawn_fen: int
    today_withdrawn_fen: int
    today_withdrawals: int
    min_withdrawal_fen: int
    daily_limit_fen: int
    daily_count: int
    owed_fen: int = 0
    fines_fen: int = 0
    bonuses_fen: int = 0


@dataclass(frozen=True, slots=True)
class ShareMember:
    """One of a wallet's members on a crew order, and what their share pays the wallet."""

    worker_id: int
    name: str
    net_fen: int


@dataclass(frozen=True, slots=True)
class SettlementOut:
    """One order's earnings: frozen until ``due_at``, then settled. In a wallet's own view
    of a crew order (``crew_size`` > 1), the wallet's shares of it: ``worker_id`` its
    first member on the crew, ``members`` every one of its members on the crew (a
    merchant may have several), the amounts what the wallet gets (and its part of the
    commission); in finance's list, the whole order under the lead's payee."""

    order_id: int
    payee_kind: PayeeKind
    payee_id: int
    worker_id: int
    city_id: str
    service_code: str
    status: str  # pending | settled
    completed_at: datetime
    due_at: datetime
    settled_at: datetime | None
    gross_fen: int
    commission_fen: int
    net_fen: int
    # How many members the order's earnings are split between (1: not a crew order, or
    # a crew order opened before shares were kept).
    crew_size: int = 1
    # The wallet's members on a crew order, in the split's order, with their shares (a
    # wallet's own view of a crew order with shares; empty otherwise).
    members: tuple[ShareMember, ...] = ()


@dataclass(frozen=True, slots=True)
class EarningsBucket:
    """Earnings of one day, week (from Monday) or month, local time."""

    start: date
    orders: int
    gross_fen: int
    commission_fen: int
    net_fen: int
    settled_fen: int
    frozen_fen: int


@dataclass(frozen=True, slots=True)
class JobsDone:
    """A worker's completed jobs today (the local day) and in all: how many, and the sum
    of what each counts — a one-worker job its price, a crew job the worker's share of
    it as settlement splits it (``settlement.rules.crew_shares``' gross: the price before
    the platform's commission). ``merchant_id``/``merchant_name``: the merchant of the
    worker's team, whose wallet these jobs are paid into (None: the worker's own)."""

    today_jobs: int
    today_fen: int
    total_jobs: int
    total_fen: int
    merchant_id: int | None = None
    merchant_name: str | None = None


@dataclass(frozen=True, slots=True)
class Earnings:
    """A wallet's earnings by period."""

    period: str
    buckets: list[EarningsBucket]


@dataclass(frozen=True, slots=True)
class Settlements:
    """A page of settlements."""

    items: list[SettlementOut]


@dataclass(frozen=True, slots=True)
class WithdrawalOut:
    """A withdrawal and where it stands."""

    id: int
    payee_kind: PayeeKind
    payee_id: int
    amount_fen: int
    status: str  # requested | rejected | paying | paid | failed
    requested_at: datetime
    reviewed_by: int | None
    reviewed_at: datetime | None
    reason: str
    out_batch_no: str
    provider_state: str
    fail_reason: str
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class Withdrawals:
    """A page of withdrawals."""

    items: list[WithdrawalOut]


@dataclass(frozen=True, slots=True)
class DifferenceOut:
    """One difference a reconciliation found."""

    id: int
    kind: str
    ref: str
    problem: str
    bill_fen: int | None
    ledger_fen: int | None


@dataclass(frozen=True, slots=True)
class ReconciliationOut:
    """A reconciliation run and its differences."""

    id: int
    provider: str
    bill_date: date
    ran_at: datetime
    bill_rows: int
    bill_sha1: str
    ledger_items: int
    differences: int
    items: list[DifferenceOut]


@dataclass(frozen=True, slots=True)
class Reconciliations:
    """Reconciliation runs, newest first (without their differences)."""

    items: list[ReconciliationOut]
