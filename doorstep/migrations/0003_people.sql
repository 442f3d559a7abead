-- Customers' addresses; workers, their certificates, availability; merchant teams.
CREATE TABLE addresses (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label         text NOT NULL,
    lat           double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng           double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
    source_crs    text NOT NULL DEFAULT 'wgs84' CHECK (source_crs IN ('wgs84', 'gcj02')),
    detail        text NOT NULL DEFAULT '',
    contact_name  text NOT NULL DEFAULT '',
    contact_phone text NOT NULL DEFAULT '',
    city_id       text REFERENCES cities(id),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX addresses_user ON addresses (user_id);

CREATE TABLE teams (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL,
    city_id      text NOT NULL REFERENCES cities(id),
    merchant_id  bigint NOT NULL REFERENCES users(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (city_id, name)
);
CREATE INDEX teams_merchant ON teams (merchant_id);

CREATE TABLE workers (
    user_id      bigint PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    city_id      text NOT NULL REFERENCES cities(id),
    skills       text[] NOT NULL DEFAULT '{}',
    home_lat     double precision NOT NULL CHECK (home_lat BETWEEN -90 AND 90),
    home_lng     double precision NOT NULL CHECK (home_lng BETWEEN -180 AND 180),
    rating_sum   bigint NOT NULL DEFAULT 0 CHECK (rating_sum >= 0),
    rating_count integer NOT NULL DEFAULT 0 CHECK (rating_count >= 0),
    team_id      bigint REFERENCES teams(id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workers_city ON workers (city_id);
CREATE INDEX workers_team ON workers (team_id);

CREATE TABLE worker_certificates (
    id          bigserial PRIMARY KEY,
    worker_id   bigint NOT NULL REFERENCES workers(user_id) ON DELETE CASCADE,
    kind        text NOT NULL REFERENCES certificate_kinds(code),
    number      text NOT NULL,
    issued_on   date NOT NULL,
    expires_on  date NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'verified', 'rejected')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (issued_on < expires_on),
    UNIQUE (kind, number)
);
CREATE INDEX worker_certificates_worker ON worker_certificates (worker_id);

-- Weekly availability: minutes from local midnight, weekday 0 = Monday.
CREATE TABLE worker_availability (
    worker_id  bigint NOT NULL REFERENCES workers(user_id) ON DELETE CASCADE,
    weekday    smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    start_min  smallint NOT NULL CHECK (start_min BETWEEN 0 AND 1439),
    end_min    smallint NOT NULL CHECK (end_min BETWEEN 1 AND 1440),
    CHECK (start_min < end_min),
    PRIMARY KEY (worker_id, weekday, start_min)
);

-- A date that differs from the weekly pattern: a day off (available = false, no times)
-- or different hours on that day (available = true with times).
CREATE TABLE worker_availability_exceptions (
    worker_id  bigint NOT NULL REFERENCES workers(user_id) ON DELETE CASCADE,
    on_date    date NOT NULL,
    available  boolean NOT NULL,
    start_min  smallint CHECK (start_min BETWEEN 0 AND 1439),
    end_min    smallint CHECK (end_min BETWEEN 1 AND 1440),
    reason     text NOT NULL DEFAULT '',
    CHECK ((available AND start_min IS NOT NULL AND end_min IS NOT NULL AND start_min < end_min)
           OR (NOT available AND start_min IS NULL AND end_min IS NULL)),
    PRIMARY KEY (worker_id, on_date)
);
