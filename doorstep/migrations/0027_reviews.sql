-- Reviews (issue 19 §1): dimensions, tags, photos, edits, the worker's reply, moderation;
-- the worker's public profile (photo, when they started the trade). docs/reviews.md.
ALTER TABLE ratings
    ADD COLUMN quality       smallint CHECK (quality BETWEEN 1 AND 5),
    ADD COLUMN attitude      smallint CHECK (attitude BETWEEN 1 AND 5),
    ADD COLUMN punctuality   smallint CHECK (punctuality BETWEEN 1 AND 5),
    ADD COLUMN tags          text[] NOT NULL DEFAULT '{}',
    ADD COLUMN photo_ids     bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN edited_at     timestamptz,
    ADD COLUMN reply         text,
    ADD COLUMN replied_at    timestamptz,
    ADD COLUMN hidden_at     timestamptz,
    ADD COLUMN hidden_reason text,
    ADD COLUMN hidden_by     bigint REFERENCES users(id),
    ADD CHECK ((reply IS NULL) = (replied_at IS NULL)),
    ADD CHECK ((hidden_at IS NULL) = (hidden_reason IS NULL));

-- Public lists read the newest visible reviews of a worker or (through orders) a service.
CREATE INDEX ratings_worker_visible ON ratings (worker_id, created_at DESC) WHERE hidden_at IS NULL;

ALTER TABLE workers
    ADD COLUMN photo_file_id bigint REFERENCES files(id) ON DELETE SET NULL,
    ADD COLUMN working_since date;
