-- Orders and every change of their status (who, when, why).
CREATE TABLE orders (
    id               bigserial PRIMARY KEY,
    city_id          text NOT NULL REFERENCES cities(id),
    customer_id      bigint NOT NULL REFERENCES users(id),
    service_code     text NOT NULL REFERENCES services(code),
    kind             text NOT NULL CHECK (kind IN ('instant', 'scheduled')),
    status           text NOT NULL DEFAULT 'created' CHECK (status IN ('created', 'confirmed',
                         'dispatching', 'offered', 'assigned', 'en_route', 'arrived', 'in_service',
                         'completed', 'cancelled', 'failed')),
    version          integer NOT NULL DEFAULT 0,
    lat              double precision NOT NULL,
    lng              double precision NOT NULL,
    address_id       bigint REFERENCES addresses(id),
    address_detail   text NOT NULL DEFAULT '',
    contact_phone    text NOT NULL DEFAULT '',
    window_start     timestamptz,            -- scheduled: the booked window; instant: null
    window_end       timestamptz,
    duration_min     integer NOT NULL,
    price_minor      integer NOT NULL,
    currency         text NOT NULL,
    notes            text NOT NULL DEFAULT '',
    worker_id        bigint REFERENCES workers(user_id),
    start_code       text NOT NULL,          -- 核销码: the customer hands it to the worker on site
    idempotency_key  text,
    en_route_at      timestamptz,
    eta_predicted_s  real,                   -- road ETA when the worker set off (for learning)
    arrived_at       timestamptz,
    cancel_fee_minor integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'instant') = (window_start IS NULL)),
    CHECK (window_end IS NULL OR window_end > window_start),
    UNIQUE (customer_id, idempotency_key)
);
CREATE INDEX orders_customer ON orders (customer_id, id DESC);
CREATE INDEX orders_worker_active ON orders (worker_id) WHERE status IN ('assigned', 'en_route', 'arrived', 'in_service');
CREATE INDEX orders_city_open ON orders (city_id, status) WHERE status IN ('confirmed', 'dispatching', 'offered');

CREATE TABLE order_events (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    actor       text NOT NULL,               -- customer, worker, dispatcher, admin, system
    actor_id    bigint,
    reason      text NOT NULL DEFAULT '',
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX order_events_order ON order_events (order_id, id);

-- ETA bias learned from observed arrivals, per city and local hour.
CREATE TABLE eta_stats (
    city_id        text NOT NULL REFERENCES cities(id),
    hour           smallint NOT NULL CHECK (hour BETWEEN 0 AND 23),
    n              integer NOT NULL,
    mean_log_ratio double precision NOT NULL,
    var_log_ratio  double precision NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (city_id, hour)
);
