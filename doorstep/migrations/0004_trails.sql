-- The archive of every accepted location fix (dispatcher replay, safety audit).
CREATE TABLE trail_points (
    worker_id    bigint NOT NULL,
    ts           timestamptz NOT NULL,       -- device time of the fix
    lat          double precision NOT NULL,
    lng          double precision NOT NULL,
    accuracy_m   real NOT NULL,
    speed_mps    real,
    heading_deg  real,
    seq          bigint NOT NULL,
    clamped      boolean NOT NULL DEFAULT false,
    received_at  timestamptz NOT NULL
);
CREATE INDEX trail_points_worker_ts ON trail_points (worker_id, ts);
