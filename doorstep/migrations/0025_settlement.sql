-- Settlement (issue 17 §5): commission rules and their snapshot on the order, settlements
-- after the after-sales window, withdrawals and their payouts, the payout sandbox's
-- transfers, daily reconciliation. Money moves only in the ledger (0020); these tables
-- hold the states and the terms. See docs/settlement.md.

-- A dimension left NULL matches every order; the most specific rule wins (settlement/commission.py).
CREATE TABLE commission_rules (
    id           bigserial PRIMARY KEY,
    city_id      text REFERENCES cities(id),
    category     text,
    service_code text REFERENCES services(code),
    merchant_id  bigint REFERENCES users(id),
    rate_bps     integer NOT NULL CHECK (rate_bps BETWEEN 0 AND 10000),
    fixed_fen    bigint NOT NULL DEFAULT 0 CHECK (fixed_fen >= 0),
    min_fen      bigint NOT NULL DEFAULT 0 CHECK (min_fen >= 0),
    max_fen      bigint CHECK (max_fen IS NULL OR max_fen >= min_fen),
    note         text NOT NULL DEFAULT '',
    active       boolean NOT NULL DEFAULT true,
    created_by   bigint REFERENCES users(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The terms of the rule that applied, as they were when the order was paid.
CREATE TABLE order_commissions (
    order_id       bigint PRIMARY KEY REFERENCES orders(id),
    rule_id        bigint REFERENCES commission_rules(id),
    rate_bps       integer NOT NULL,
    fixed_fen      bigint NOT NULL,
    min_fen        bigint NOT NULL,
    max_fen        bigint,
    base_fen       bigint NOT NULL,
    commission_fen bigint NOT NULL,
    snapshot_at    timestamptz NOT NULL
);

-- One row per completed order: frozen until due_at, then settled into the payee's wallet.
CREATE TABLE settlements (
    order_id       bigint PRIMARY KEY REFERENCES orders(id),
    payee_kind     text NOT NULL CHECK (payee_kind IN ('worker', 'merchant')),
    payee_id       bigint NOT NULL REFERENCES users(id),
    worker_id      bigint NOT NULL REFERENCES users(id),
    city_id        text NOT NULL,
    completed_at   timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'settled')),
    gross_fen      bigint NOT NULL DEFAULT 0,
    commission_fen bigint NOT NULL DEFAULT 0,
    net_fen        bigint NOT NULL DEFAULT 0,
    settled_at     timestamptz
);
CREATE INDEX settlements_due ON settlements (due_at) WHERE status = 'pending';
CREATE INDEX settlements_payee ON settlements (payee_kind, payee_id, completed_at DESC);

CREATE TABLE withdrawals (
    id            bigserial PRIMARY KEY,
    payee_kind    text NOT NULL CHECK (payee_kind IN ('worker', 'merchant')),
    payee_id      bigint NOT NULL REFERENCES users(id),
    amount_fen    bigint NOT NULL CHECK (amount_fen > 0),
    status        text NOT NULL DEFAULT 'requested'
                  CHECK (status IN ('requested', 'rejected', 'paying', 'paid', 'failed')),
    openid        text NOT NULL,
    out_batch_no  text NOT NULL UNIQUE,
    out_detail_no text NOT NULL UNIQUE,
    requested_at  timestamptz NOT NULL,
    reviewed_by   bigint REFERENCES users(id),
    reviewed_at   timestamptz,
    reason        text NOT NULL DEFAULT '',
    provider_state text NOT NULL DEFAULT '',
    fail_reason   text NOT NULL DEFAULT '',
    finished_at   timestamptz
);
CREATE INDEX withdrawals_payee ON withdrawals (payee_kind, payee_id, requested_at DESC);
CREATE INDEX withdrawals_open ON withdrawals (status, requested_at) WHERE status IN ('requested', 'paying');

-- The payout sandbox's own books (a provider keeps its transfers; ours is local).
CREATE TABLE payout_sandbox_batches (
    out_batch_no  text PRIMARY KEY,
    batch_id      text NOT NULL UNIQUE,
    mchid         text NOT NULL,
    appid         text NOT NULL,
    batch_name    text NOT NULL,
    batch_remark  text NOT NULL,
    total_amount  bigint NOT NULL,
    total_num     integer NOT NULL,
    request_hash  text NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE TABLE payout_sandbox_details (
    out_detail_no   text PRIMARY KEY,
    out_batch_no    text NOT NULL REFERENCES payout_sandbox_batches(out_batch_no),
    detail_id       text NOT NULL UNIQUE,
    transfer_amount bigint NOT NULL,
    transfer_remark text NOT NULL,
    openid          text NOT NULL,
    user_name       text,
    outcome         text NOT NULL CHECK (outcome IN ('SUCCESS', 'FAIL')),
    fail_reason     text NOT NULL DEFAULT '',
    settles_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX payout_sandbox_details_batch ON payout_sandbox_details (out_batch_no);

-- A daily reconciliation: the provider's bill for one day against the ledger.
CREATE TABLE reconciliations (
    id           bigserial PRIMARY KEY,
    provider     text NOT NULL,
    bill_date    date NOT NULL,
    ran_at       timestamptz NOT NULL,
    bill_rows    integer NOT NULL,
    bill_sha1    text NOT NULL,
    ledger_items integer NOT NULL,
    differences  integer NOT NULL,
    UNIQUE (provider, bill_date, ran_at)
);
CREATE TABLE reconciliation_differences (
    id                bigserial PRIMARY KEY,
    reconciliation_id bigint NOT NULL REFERENCES reconciliations(id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('payment', 'refund')),
    ref               text NOT NULL,
    problem           text NOT NULL CHECK (problem IN ('missing_in_ledger', 'missing_in_bill',
                                                       'amount_mismatch', 'duplicate_in_bill')),
    bill_fen          bigint,
    ledger_fen        bigint
);
CREATE INDEX reconciliation_differences_run ON reconciliation_differences (reconciliation_id);
