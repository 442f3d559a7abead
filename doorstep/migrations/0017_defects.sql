-- Issue 14 (items 3, 11 and the "also found" list): state that must survive Redis.
--
-- Item 11: the fingerprint (SHA-256 of the canonical request) of the booking an
-- Idempotency-Key was first used for; a reuse with another request is refused.
ALTER TABLE orders ADD COLUMN idempotency_fingerprint text;

-- Item 3: wrong start codes. One row per order (how many wrong codes since the last
-- unlock or new code, and since when the start is locked) ...
CREATE TABLE start_code_guards (
    order_id   bigint PRIMARY KEY REFERENCES orders(id) ON DELETE CASCADE,
    failures   integer NOT NULL DEFAULT 0,
    locked_at  timestamptz,
    updated_at timestamptz NOT NULL
);
-- ... and every wrong code, for the limit per worker (a sliding window).
CREATE TABLE start_code_failures (
    id        bigserial PRIMARY KEY,
    order_id  bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    worker_id bigint NOT NULL,
    at        timestamptz NOT NULL
);
CREATE INDEX start_code_failures_worker ON start_code_failures (worker_id, at);

-- Alerts for dispatchers (a locked start, an order stuck on site): at most one open alert
-- of a kind per order; the console lists the open ones and hears new ones on the feed.
CREATE TABLE dispatch_alerts (
    id          bigserial PRIMARY KEY,
    city_id     text NOT NULL,
    order_id    bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    kind        text NOT NULL,
    message     text NOT NULL,
    raised_at   timestamptz NOT NULL,
    resolved_at timestamptz,
    resolved_by bigint
);
CREATE UNIQUE INDEX dispatch_alerts_one_open ON dispatch_alerts (order_id, kind)
    WHERE resolved_at IS NULL;
CREATE INDEX dispatch_alerts_city_open ON dispatch_alerts (city_id, raised_at)
    WHERE resolved_at IS NULL;

-- Share links revoked by the customer: tokens issued (iat, epoch seconds) up to
-- ``revoked_iat`` are refused.
CREATE TABLE share_revocations (
    order_id    bigint PRIMARY KEY REFERENCES orders(id) ON DELETE CASCADE,
    revoked_iat bigint NOT NULL,
    revoked_at  timestamptz NOT NULL
);
