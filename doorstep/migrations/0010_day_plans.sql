-- Day plans: a city's scheduled jobs for one local date, planned across its workers.
-- Every re-plan (or booking inserted into the plan) stores a new version; the newest
-- version is the plan. Older versions are pruned to the last few.
CREATE TABLE day_plans (
    id          bigserial PRIMARY KEY,
    city_id     text NOT NULL REFERENCES cities(id),
    plan_date   date NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    kind        text NOT NULL CHECK (kind IN ('solve', 'insert')),  -- a full re-plan, or one booking fitted in
    reason      text NOT NULL DEFAULT '',
    actor_id    bigint REFERENCES users(id),                        -- the dispatcher who asked; null: the system
    objective   bigint NOT NULL DEFAULT 0,
    solve_ms    integer NOT NULL DEFAULT 0,
    dropped     jsonb NOT NULL DEFAULT '[]',                         -- [{"order_id", "reason"}]: jobs that fit nowhere
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (city_id, plan_date, version)
);

-- One worker's route in a plan version (workers without stops have no row).
CREATE TABLE day_plan_routes (
    plan_id     bigint NOT NULL REFERENCES day_plans(id) ON DELETE CASCADE,
    worker_id   bigint NOT NULL REFERENCES workers(user_id) ON DELETE CASCADE,
    travel_s    integer NOT NULL,
    distance_m  integer NOT NULL,
    breaks      jsonb NOT NULL DEFAULT '[]',                         -- [{"start_at", "duration_s"}]
    PRIMARY KEY (plan_id, worker_id)
);

CREATE TABLE day_plan_stops (
    plan_id      bigint NOT NULL REFERENCES day_plans(id) ON DELETE CASCADE,
    worker_id    bigint NOT NULL,
    seq          integer NOT NULL,
    order_id     bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    arrival_at   timestamptz NOT NULL,
    start_at     timestamptz NOT NULL,
    departure_at timestamptz NOT NULL,
    slack_s      integer NOT NULL,
    PRIMARY KEY (plan_id, worker_id, seq),
    FOREIGN KEY (plan_id, worker_id) REFERENCES day_plan_routes (plan_id, worker_id) ON DELETE CASCADE
);
CREATE INDEX day_plan_stops_order ON day_plan_stops (order_id);

-- Scheduled orders of a city by local date are found through their window.
CREATE INDEX orders_city_window ON orders (city_id, window_start) WHERE kind = 'scheduled';
