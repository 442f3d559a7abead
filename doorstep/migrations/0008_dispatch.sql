-- Offers to workers, exclusions, the matcher's decisions, dispatcher overrides,
-- ratings, and the audit of address reveals.
ALTER TABLE orders ADD COLUMN pinned boolean NOT NULL DEFAULT false;
ALTER TABLE orders ADD COLUMN dispatch_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN completed_at timestamptz;
ALTER TABLE cities ADD COLUMN dispatch_paused boolean NOT NULL DEFAULT false;

CREATE TABLE offers (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    worker_id   bigint NOT NULL REFERENCES workers(user_id),
    mode        text NOT NULL CHECK (mode IN ('direct', 'grab')),
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'accepted', 'rejected', 'expired', 'withdrawn')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    answered_at timestamptz,
    reason      text NOT NULL DEFAULT '',
    eta_s       real,
    distance_m  real
);
CREATE INDEX offers_order ON offers (order_id);
CREATE INDEX offers_pending ON offers (expires_at) WHERE status = 'pending';
CREATE INDEX offers_worker ON offers (worker_id, id DESC);

CREATE TABLE order_exclusions (
    order_id   bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    worker_id  bigint NOT NULL REFERENCES workers(user_id),
    reason     text NOT NULL,
    actor      text NOT NULL,
    actor_id   bigint,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, worker_id)
);

CREATE TABLE dispatch_decisions (
    id        bigserial PRIMARY KEY,
    order_id  bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    at        timestamptz NOT NULL DEFAULT now(),
    policy    text NOT NULL,
    worker_id bigint,
    decision  jsonb NOT NULL            -- candidates with every score term: the "why"
);
CREATE INDEX dispatch_decisions_order ON dispatch_decisions (order_id, id DESC);

CREATE TABLE overrides (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor_id  bigint NOT NULL REFERENCES users(id),
    action    text NOT NULL,            -- assign, unassign, pin, unpin, exclude, pause, resume
    city_id   text REFERENCES cities(id),
    order_id  bigint REFERENCES orders(id),
    worker_id bigint,
    reason    text NOT NULL,
    forced    boolean NOT NULL DEFAULT false,
    warnings  jsonb NOT NULL DEFAULT '[]',
    before    jsonb NOT NULL DEFAULT '{}',
    after     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX overrides_order ON overrides (order_id);
CREATE INDEX overrides_city ON overrides (city_id, id DESC);

CREATE TABLE ratings (
    order_id    bigint PRIMARY KEY REFERENCES orders(id),
    worker_id   bigint NOT NULL REFERENCES workers(user_id),
    customer_id bigint NOT NULL REFERENCES users(id),
    stars       smallint NOT NULL CHECK (stars BETWEEN 1 AND 5),
    text        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ratings_worker ON ratings (worker_id);

CREATE TABLE address_reveals (
    id        bigserial PRIMARY KEY,
    order_id  bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    worker_id bigint NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    what      text NOT NULL             -- address, phone
);
CREATE INDEX address_reveals_order ON address_reveals (order_id);
