-- Files: uploaded photos and documents (files/). A file's content is a blob named by
-- its SHA-256 (stored under the data dir, or later in an S3-compatible store); a
-- blob row exists once its content is completely written, and several files (of
-- different owners or purposes) may share one blob.
CREATE TABLE file_blobs (
    sha256      text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes  bigint NOT NULL CHECK (size_bytes > 0),
    media_type  text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE files (
    id          bigserial PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose ~ '^[a-z][a-z0-9_]{1,39}$'),
    sha256      text NOT NULL REFERENCES file_blobs(sha256),
    media_type  text NOT NULL
                CHECK (media_type IN ('image/jpeg', 'image/png', 'image/webp', 'application/pdf')),
    size_bytes  bigint NOT NULL CHECK (size_bytes > 0),
    width       integer CHECK (width > 0),
    height      integer CHECK (height > 0),
    -- what the owner attached it to (e.g. 'review:42'); NULL: not used yet, cleaned up later
    attached_to text CHECK (length(attached_to) BETWEEN 1 AND 100),
    attached_at timestamptz,
    created_at  timestamptz NOT NULL,
    CHECK ((attached_to IS NULL) = (attached_at IS NULL))
);
CREATE INDEX files_owner ON files (owner_id, purpose, sha256);
CREATE INDEX files_blob ON files (sha256);
CREATE INDEX files_unattached ON files (created_at) WHERE attached_to IS NULL;

-- Per-user upload counts in a fixed window (files/rules.py), locked per upload.
CREATE TABLE file_upload_counts (
    owner_id     bigint PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    window_start timestamptz NOT NULL,
    uploads      integer NOT NULL CHECK (uploads >= 0)
);
