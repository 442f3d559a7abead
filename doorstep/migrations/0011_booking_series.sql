-- Recurring bookings: a weekly series (same service, address, weekdays and time) whose
-- occurrences are ordinary scheduled orders. The series prefers one worker (continuity);
-- each occurrence that could not be booked, or not with that worker, is recorded with why.
CREATE TABLE booking_series (
    id                  bigserial PRIMARY KEY,
    city_id             text NOT NULL REFERENCES cities(id),
    customer_id         bigint NOT NULL REFERENCES users(id),
    service_code        text NOT NULL REFERENCES services(code),
    address_id          bigint REFERENCES addresses(id),
    lat                 double precision NOT NULL,
    lng                 double precision NOT NULL,
    weekdays            smallint[] NOT NULL CHECK (cardinality(weekdays) BETWEEN 1 AND 7),  -- 0 = Monday
    start_min           smallint NOT NULL CHECK (start_min BETWEEN 0 AND 1439),               -- local time
    window_min          smallint NOT NULL CHECK (window_min BETWEEN 15 AND 720),
    first_date          date NOT NULL,
    weeks               smallint NOT NULL CHECK (weeks BETWEEN 1 AND 52),
    preferred_worker_id bigint REFERENCES workers(user_id) ON DELETE SET NULL,
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX booking_series_customer ON booking_series (customer_id, id DESC);

CREATE TABLE series_occurrences (
    series_id   bigint NOT NULL REFERENCES booking_series(id) ON DELETE CASCADE,
    on_date     date NOT NULL,
    order_id    bigint REFERENCES orders(id),        -- null: could not be booked
    conflict    text,                                -- null, or a stable code (fully_booked, other_worker, ...)
    reason      text NOT NULL DEFAULT '',
    PRIMARY KEY (series_id, on_date)
);

ALTER TABLE orders ADD COLUMN series_id bigint REFERENCES booking_series(id);
CREATE INDEX orders_series ON orders (series_id) WHERE series_id IS NOT NULL;
