-- Growth (docs/growth.md): coupon templates made by operators, coupons issued to customers
-- (claimed, granted, or on an event), the discount snapshotted on an order at checkout, and
-- customers' points with their history. Money moves in the ledger (subsidy_expense,
-- points_liability, points_expense), in the transaction of the payment or refund it follows.

CREATE TABLE coupon_templates (
    id              bigserial PRIMARY KEY,
    name_zh         text NOT NULL,
    name_en         text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('amount', 'percent')),
    amount_fen      bigint NOT NULL DEFAULT 0 CHECK (amount_fen >= 0),    -- amount off
    percent_off     integer NOT NULL DEFAULT 0 CHECK (percent_off BETWEEN 0 AND 99),
    cap_fen         bigint CHECK (cap_fen > 0),                           -- percent: at most
    min_spend_fen   bigint NOT NULL DEFAULT 0 CHECK (min_spend_fen >= 0),
    categories      text[] NOT NULL DEFAULT '{}',  -- empty: any
    services        text[] NOT NULL DEFAULT '{}',
    cities          text[] NOT NULL DEFAULT '{}',
    valid_from      timestamptz,                   -- a fixed window ...
    valid_until     timestamptz,
    valid_days      integer CHECK (valid_days BETWEEN 1 AND 366),  -- ... or N days after issue
    total_stock     integer NOT NULL CHECK (total_stock >= 0),
    issued          integer NOT NULL DEFAULT 0 CHECK (issued >= 0 AND issued <= total_stock),
    per_user_limit  integer NOT NULL DEFAULT 1 CHECK (per_user_limit BETWEEN 1 AND 100),
    claimable       boolean NOT NULL DEFAULT true,  -- customers may claim it in the app
    auto_event      text,                           -- issued on this event (account.created)
    active          boolean NOT NULL DEFAULT true,
    created_by      bigint REFERENCES users(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((valid_days IS NULL) <> (valid_until IS NULL))
);
CREATE INDEX coupon_templates_auto ON coupon_templates (auto_event) WHERE auto_event IS NOT NULL;

CREATE TABLE coupons (
    id            bigserial PRIMARY KEY,
    template_id   bigint NOT NULL REFERENCES coupon_templates(id),
    customer_id   bigint NOT NULL REFERENCES users(id),
    -- available (expired once valid_until has passed), locked to an order at checkout,
    -- used (its order was paid with it)
    status        text NOT NULL DEFAULT 'available'
                  CHECK (status IN ('available', 'locked', 'used')),
    source        text NOT NULL CHECK (source IN ('claim', 'grant', 'event')),
    source_key    text UNIQUE,            -- an event's grant: once per event and template
    valid_from    timestamptz NOT NULL,
    valid_until   timestamptz NOT NULL,
    order_id      bigint REFERENCES orders(id),
    issued_at     timestamptz NOT NULL DEFAULT now(),
    used_at       timestamptz,
    returned_at   timestamptz,
    granted_by    bigint REFERENCES users(id)
);
CREATE INDEX coupons_customer ON coupons (customer_id, status);
CREATE INDEX coupons_template ON coupons (template_id, customer_id);
CREATE INDEX coupons_order ON coupons (order_id) WHERE order_id IS NOT NULL;

-- The discount of an order, snapshotted at checkout: what the price was, what the coupon
-- and the points take, what the customer pays. 'applied' until the payment is captured
-- ('captured', with the trade) or the order ends unpaid, or the payment was for another
-- amount ('void').
CREATE TABLE order_discounts (
    order_id      bigint PRIMARY KEY REFERENCES orders(id),
    customer_id   bigint NOT NULL REFERENCES users(id),
    price_fen     bigint NOT NULL CHECK (price_fen >= 0),
    coupon_id     bigint REFERENCES coupons(id),
    coupon_fen    bigint NOT NULL DEFAULT 0 CHECK (coupon_fen >= 0),
    points        integer NOT NULL DEFAULT 0 CHECK (points >= 0),
    points_fen    bigint NOT NULL DEFAULT 0 CHECK (points_fen >= 0),
    payable_fen   bigint NOT NULL CHECK (payable_fen >= 0),
    status        text NOT NULL DEFAULT 'applied' CHECK (status IN ('applied', 'captured', 'void')),
    payment_id    bigint REFERENCES payments(id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (price_fen = coupon_fen + points_fen + payable_fen)
);

-- Points: one row per customer (balance may go below zero only when points already spent
-- are taken back after a refund), and every change with its reason.
CREATE TABLE points_accounts (
    customer_id   bigint PRIMARY KEY REFERENCES users(id),
    balance       integer NOT NULL DEFAULT 0,
    held          integer NOT NULL DEFAULT 0 CHECK (held >= 0)
);

CREATE TABLE points_history (
    id            bigserial PRIMARY KEY,
    customer_id   bigint NOT NULL REFERENCES users(id),
    kind          text NOT NULL CHECK (kind IN ('earn', 'redeem', 'return', 'reverse', 'restore')),
    points        integer NOT NULL,     -- signed: + earned or given back, - spent or taken back
    balance_after integer NOT NULL,
    order_id      bigint REFERENCES orders(id),
    key           text NOT NULL UNIQUE,  -- the cause: once each
    basis_fen     bigint,               -- earn: the cash paid the points were counted on
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX points_history_customer ON points_history (customer_id, id DESC);
CREATE INDEX points_history_order ON points_history (order_id) WHERE order_id IS NOT NULL;
