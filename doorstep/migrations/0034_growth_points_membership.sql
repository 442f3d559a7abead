-- Growth, second part (docs/growth.md): the points terms of a completed order, so points are
-- earned on what is actually paid whenever it is paid (a pay-after-service order's final
-- payment, a deposit order's balance, add-ons) and taken back with refunds; membership
-- levels (会员) and their monthly coupon packs; coupon cost in the analytics rollups.

-- The points terms of a completed order, fixed at completion: points per yuan paid, with the
-- customer's level multiplier then (rate_bps: points per yuan × 10000), and a point's value.
CREATE TABLE order_points (
    order_id            bigint PRIMARY KEY REFERENCES orders(id),
    customer_id         bigint NOT NULL REFERENCES users(id),
    rate_bps            integer NOT NULL CHECK (rate_bps >= 0),
    fen_per_100_points  integer NOT NULL CHECK (fen_per_100_points > 0),
    level               text NOT NULL,
    completed_at        timestamptz NOT NULL
);

-- A customer's membership level as last computed (from points earned over 12 months).
CREATE TABLE memberships (
    customer_id  bigint PRIMARY KEY REFERENCES users(id),
    level        text NOT NULL,
    points_12m   integer NOT NULL,
    since        timestamptz NOT NULL,   -- at this level since
    checked_at   timestamptz NOT NULL
);

-- Coupons of a level's monthly pack (source 'member', once per customer, month and item by
-- source_key) come from system templates made from the params (system_key: level and terms).
ALTER TABLE coupons DROP CONSTRAINT coupons_source_check;
ALTER TABLE coupons ADD CONSTRAINT coupons_source_check
    CHECK (source IN ('claim', 'grant', 'event', 'member'));
ALTER TABLE coupon_templates ADD COLUMN system_key text UNIQUE;

-- Points earned over a window, per customer.
CREATE INDEX points_history_customer_at ON points_history (customer_id, at);

-- Coupon cost in the analytics rollups (docs/analytics.md), per booking day like every
-- other figure: orders paid with a coupon, the price of those completed, the subsidy
-- (subsidy_expense, net of refunds' reversals) and the points spent (their value, net).
ALTER TABLE analytics_hourly
    ADD COLUMN coupon_orders       integer NOT NULL DEFAULT 0,
    ADD COLUMN coupon_gmv_fen      bigint NOT NULL DEFAULT 0,
    ADD COLUMN subsidy_fen         bigint NOT NULL DEFAULT 0,
    ADD COLUMN points_redeemed_fen bigint NOT NULL DEFAULT 0;
ALTER TABLE analytics_daily
    ADD COLUMN coupon_orders       integer NOT NULL DEFAULT 0,
    ADD COLUMN coupon_gmv_fen      bigint NOT NULL DEFAULT 0,
    ADD COLUMN subsidy_fen         bigint NOT NULL DEFAULT 0,
    ADD COLUMN points_redeemed_fen bigint NOT NULL DEFAULT 0;
