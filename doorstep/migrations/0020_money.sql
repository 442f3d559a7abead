-- Money (issue 17): the double-entry ledger, order payments, refunds, notifications.
-- See docs/ledger.md and docs/payments.md.

-- A journal entry: immutable once written (corrections are reversing entries).
-- ``key`` is the cause's identity: posting it twice writes it once.
CREATE TABLE ledger_entries (
    id        bigserial PRIMARY KEY,
    key       text NOT NULL UNIQUE,
    kind      text NOT NULL,
    order_id  bigint,
    currency  text NOT NULL DEFAULT 'CNY' CHECK (currency = 'CNY'),
    memo      text NOT NULL DEFAULT '',
    data      jsonb NOT NULL DEFAULT '{}',
    reverses  bigint UNIQUE REFERENCES ledger_entries(id),
    posted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_order ON ledger_entries (order_id) WHERE order_id IS NOT NULL;

-- One debit or credit (never both) of a positive number of fen on one account.
CREATE TABLE ledger_lines (
    id         bigserial PRIMARY KEY,
    entry_id   bigint NOT NULL REFERENCES ledger_entries(id),
    account    text NOT NULL,
    debit_fen  bigint NOT NULL DEFAULT 0 CHECK (debit_fen >= 0),
    credit_fen bigint NOT NULL DEFAULT 0 CHECK (credit_fen >= 0),
    CHECK ((debit_fen > 0) <> (credit_fen > 0))
);
CREATE INDEX ledger_lines_entry ON ledger_lines (entry_id);
CREATE INDEX ledger_lines_account ON ledger_lines (account, entry_id) INCLUDE (debit_fen, credit_fen);

-- Entries and lines are never changed or removed.
CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are immutable: post a reversing entry instead'
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_lines_immutable BEFORE UPDATE OR DELETE ON ledger_lines
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();

-- At commit, every new entry has at least two lines and balances.
CREATE FUNCTION ledger_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE n integer; d bigint; c bigint;
BEGIN
    SELECT count(*), coalesce(sum(debit_fen), 0), coalesce(sum(credit_fen), 0)
      INTO n, d, c FROM ledger_lines WHERE entry_id = NEW.id;
    IF n < 2 OR d <> c THEN
        RAISE EXCEPTION 'ledger entry % does not balance (% lines, debits %, credits %)',
            NEW.key, n, d, c USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced();

-- Orders may wait for their payment (待支付) before they are confirmed.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN ('created',
    'awaiting_payment', 'confirmed', 'dispatching', 'offered', 'assigned', 'en_route', 'arrived',
    'in_service', 'completed', 'cancelled', 'failed'));

-- How a service is paid. A service without a row is paid after the service (as before).
CREATE TABLE service_payment (
    service_code       text PRIMARY KEY REFERENCES services(code),
    pay_mode           text NOT NULL CHECK (pay_mode IN ('prepaid', 'deposit', 'after_service')),
    deposit_fen        bigint NOT NULL DEFAULT 0 CHECK (deposit_fen >= 0),
    inspection_fee_fen bigint NOT NULL DEFAULT 0 CHECK (inspection_fee_fen >= 0),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (pay_mode <> 'deposit' OR (deposit_fen > 0 AND inspection_fee_fen <= deposit_fen))
);

-- An order's price, line by line (base, surcharges, discounts, fees), and how it is paid.
CREATE TABLE order_prices (
    order_id           bigint PRIMARY KEY REFERENCES orders(id),
    pay_mode           text NOT NULL,
    lines              jsonb NOT NULL,
    total_fen          bigint NOT NULL CHECK (total_fen >= 0),
    deposit_fen        bigint NOT NULL DEFAULT 0,
    inspection_fee_fen bigint NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- One trade at a provider. ``reserved_fen``: refunds asked or done (never above the amount).
CREATE TABLE payments (
    id                bigserial PRIMARY KEY,
    order_id          bigint NOT NULL REFERENCES orders(id),
    customer_id       bigint NOT NULL REFERENCES users(id),
    purpose           text NOT NULL CHECK (purpose IN ('prepay', 'deposit', 'balance', 'addon', 'final')),
    provider          text NOT NULL,
    channel           text NOT NULL,
    out_trade_no      text NOT NULL UNIQUE,
    amount_fen        bigint NOT NULL CHECK (amount_fen > 0),
    currency          text NOT NULL DEFAULT 'CNY' CHECK (currency = 'CNY'),
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'closed', 'failed')),
    provider_trade_no text UNIQUE,
    prepay            jsonb NOT NULL DEFAULT '{}',
    reserved_fen      bigint NOT NULL DEFAULT 0 CHECK (reserved_fen >= 0 AND reserved_fen <= amount_fen),
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz,
    paid_at           timestamptz,
    closed_at         timestamptz
);
CREATE INDEX payments_order ON payments (order_id, id);
CREATE INDEX payments_pending ON payments (created_at) WHERE status = 'pending';

-- A refund of (part of) a payment; ``out_refund_no`` is its identity at the provider.
CREATE TABLE refunds (
    id                 bigserial PRIMARY KEY,
    payment_id         bigint NOT NULL REFERENCES payments(id),
    order_id           bigint NOT NULL REFERENCES orders(id),
    out_refund_no      text NOT NULL UNIQUE,
    amount_fen         bigint NOT NULL CHECK (amount_fen > 0),
    cause              text NOT NULL,
    reason             text NOT NULL DEFAULT '',
    status             text NOT NULL DEFAULT 'requested'
                           CHECK (status IN ('requested', 'processing', 'succeeded', 'closed', 'abnormal')),
    provider_refund_no text,
    requested_by       bigint,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    succeeded_at       timestamptz
);
CREATE INDEX refunds_payment ON refunds (payment_id);
CREATE INDEX refunds_open ON refunds (created_at) WHERE status IN ('requested', 'processing');

-- Every incoming notification and what became of it (forged ones too).
CREATE TABLE payment_notifications (
    id           bigserial PRIMARY KEY,
    provider     text NOT NULL,
    notify_id    text,
    kind         text,
    out_trade_no text,
    outcome      text NOT NULL,   -- applied, duplicate, ignored, rejected
    reason       text NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_notifications_trade ON payment_notifications (out_trade_no);

-- The finance role (payments, refunds, settlements, withdrawals, reconciliation).
ALTER TABLE users DROP CONSTRAINT users_roles_check;
ALTER TABLE users ADD CONSTRAINT users_roles_check CHECK (
    roles <@ ARRAY['customer','worker','merchant','dispatcher','admin','finance']::text[]
    AND cardinality(roles) > 0);

-- On site, the worker proposes a quote (a deposit service: 定金 + 尾款) or add-on items
-- during the service; the customer approves (and pays the difference) or declines.
CREATE TABLE order_extras (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES orders(id),
    kind        text NOT NULL CHECK (kind IN ('quote', 'addon')),
    items       jsonb NOT NULL,
    total_fen   bigint NOT NULL CHECK (total_fen > 0),
    status      text NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'approved', 'declined')),
    worker_id   bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    decided_at  timestamptz
);
CREATE INDEX order_extras_order ON order_extras (order_id, id);
CREATE UNIQUE INDEX order_extras_one_quote ON order_extras (order_id) WHERE kind = 'quote' AND status <> 'declined';
