-- Crews (issue 20 §4): a service done by several workers together (deep cleaning,
-- moving). The service declares its crew size; an order copies it at booking (a later
-- change of the catalog does not change orders already booked). The engine offers a
-- crew order to a whole crew at once (offers of mode 'crew'); when every member has
-- accepted, the order is assigned to the crew: orders.worker_id is the crew's lead
-- (seat 0), order_crew lists every member. See docs/dispatch.md#crews.

ALTER TABLE services ADD COLUMN crew_size integer NOT NULL DEFAULT 1
    CHECK (crew_size BETWEEN 1 AND 8);
ALTER TABLE orders ADD COLUMN crew_size integer NOT NULL DEFAULT 1
    CHECK (crew_size BETWEEN 1 AND 8);

ALTER TABLE offers DROP CONSTRAINT offers_mode_check;
ALTER TABLE offers ADD CONSTRAINT offers_mode_check CHECK (mode IN ('direct', 'grab', 'crew'));

-- The members of an order's crew; a member released (the crew unassigned, the order
-- rescheduled) keeps the row with released_at set, and is back (released_at NULL) if the
-- same worker is in the order's next crew.
CREATE TABLE order_crew (
    order_id    bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    worker_id   bigint NOT NULL REFERENCES workers(user_id),
    seat        smallint NOT NULL CHECK (seat >= 0),  -- 0: the lead (orders.worker_id)
    joined_at   timestamptz NOT NULL DEFAULT now(),
    arrived_at  timestamptz,                          -- this member's own arrival
    released_at timestamptz,
    PRIMARY KEY (order_id, worker_id)
);
CREATE INDEX order_crew_held ON order_crew (worker_id) WHERE released_at IS NULL;
