-- Domain events: the transactional outbox and its delivery state (events/, docs/events.md).
--
-- A producer inserts into events in the transaction of the change it records (no
-- NOTIFY there: PostgreSQL serialises the commits of notifying transactions, which
-- made bookings queue behind each other's WAL flush). The relay's sequencer
-- (events_sequence, polled every few milliseconds) then numbers committed events in one total order
-- (seq) — id order within a batch, which keeps the events of one aggregate in the
-- order their transactions held the aggregate's row lock. Each consumer keeps a cursor
-- on seq; a delivery that fails is parked with its retry time, and the consumer's later
-- events of the same aggregate wait behind it. After too many failures it is dead.

CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    seq         bigint UNIQUE,                 -- NULL until the sequencer numbers it
    type        text NOT NULL,
    aggregate   text NOT NULL,                 -- e.g. order:42
    version     integer NOT NULL DEFAULT 0,    -- the aggregate's version after the change
    payload     jsonb NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;
CREATE INDEX events_aggregate ON events (aggregate, id);

-- Number up to `batch` committed, unnumbered events in id order; returns the highest
-- seq. One sequencer at a time (a transaction-scoped advisory lock); consumers are woken
-- on doorstep_event_seq with the new head.
CREATE FUNCTION events_sequence(batch integer) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    base bigint;
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('doorstep-events-sequencer'));
    SELECT coalesce(max(seq), 0) INTO base FROM events;
    WITH todo AS (
        SELECT id, row_number() OVER (ORDER BY id) AS k
        FROM (SELECT id FROM events WHERE seq IS NULL ORDER BY id LIMIT batch) AS s
    )
    UPDATE events e SET seq = base + todo.k FROM todo WHERE e.id = todo.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('doorstep_event_seq', (base + n)::text);
    END IF;
    RETURN base + n;
END $$;

CREATE TABLE event_cursors (
    consumer   text PRIMARY KEY,
    position   bigint NOT NULL,                -- every event with seq <= position is handled or parked
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE event_parked (
    id         bigserial PRIMARY KEY,
    consumer   text NOT NULL,
    seq        bigint NOT NULL,
    event_id   bigint NOT NULL REFERENCES events(id),
    aggregate  text NOT NULL,
    state      text NOT NULL CHECK (state IN ('pending', 'dead')),
    attempts   integer NOT NULL DEFAULT 0,     -- failed attempts so far (0: waiting behind another)
    next_at    timestamptz NOT NULL,
    last_error text NOT NULL DEFAULT '',
    parked_at  timestamptz NOT NULL DEFAULT now(),
    dead_at    timestamptz,
    UNIQUE (consumer, seq)
);
CREATE INDEX event_parked_pending ON event_parked (consumer, aggregate, seq) WHERE state = 'pending';
CREATE INDEX event_parked_dead ON event_parked (consumer, id) WHERE state = 'dead';

-- What the probe consumer (events/probe.py) handled: one row per delivery, so a
-- duplicate delivery shows as a second row. The end-to-end check of the relay (the
-- admin's probe, the benchmark, the crash test) reads it.
CREATE TABLE event_probes (
    event_id   bigint NOT NULL REFERENCES events(id),
    probe      text NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX event_probes_event ON event_probes (event_id);
CREATE INDEX event_probes_probe ON event_probes (probe);
