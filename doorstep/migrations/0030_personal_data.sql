-- Personal data encrypted at rest (issue 19 §5, docs/privacy.md). The encryption is
-- done in Python (privacy/crypto.py, AES-256-GCM): this migration only adds the blind
-- indexes that replace the plaintext unique constraints and lookups, the bookkeeping of
-- `doorstep keys rotate`, and the marks that tell it which columns of an existing
-- database still hold plaintext. Every `doorstep` command encrypts those right after
-- migrating, before anything reads them; a fresh database has none.

-- Keyed blind indexes (HMAC-SHA256): login by phone, one account per phone, one
-- application per identity number. NULL only until the start-up step fills them.
ALTER TABLE users ADD COLUMN phone_bidx bytea;
CREATE UNIQUE INDEX users_phone_bidx ON users (phone_bidx);
ALTER TABLE users DROP CONSTRAINT users_phone_key;

ALTER TABLE applications ADD COLUMN id_number_bidx bytea;
DROP INDEX applications_id_number;
CREATE UNIQUE INDEX applications_id_number_bidx ON applications (id_number_bidx)
    WHERE id_number_bidx IS NOT NULL;

-- SMS we send: found by phone through the index (the phone itself is encrypted).
ALTER TABLE sms_messages ADD COLUMN phone_bidx bytea;
CREATE INDEX sms_messages_phone_bidx ON sms_messages (phone_bidx);

-- Login codes, login failures and rate windows keyed by a phone keep its blind index
-- (hex) in place of the phone from now on; the rows of before are short-lived and are
-- emptied here rather than carried over.
DELETE FROM sms_codes;
DELETE FROM login_failures;
DELETE FROM rate_windows WHERE bucket LIKE 'sms-code-%';

-- Columns of a database migrated from before 0030 that may hold plaintext.
CREATE TABLE pii_plaintext (
    col text PRIMARY KEY
);
INSERT INTO pii_plaintext (col)
SELECT c FROM (VALUES
    ('users.phone', EXISTS (SELECT 1 FROM users)),
    ('addresses.detail', EXISTS (SELECT 1 FROM addresses)),
    ('addresses.contact_phone', EXISTS (SELECT 1 FROM addresses)),
    ('orders.address_detail', EXISTS (SELECT 1 FROM orders)),
    ('orders.contact_phone', EXISTS (SELECT 1 FROM orders)),
    ('applications.id_number', EXISTS (SELECT 1 FROM applications)),
    ('emergency_contacts.phone', EXISTS (SELECT 1 FROM emergency_contacts)),
    ('sms_messages.phone', EXISTS (SELECT 1 FROM sms_messages))
) AS t (c, used) WHERE used;

-- Where a re-encryption (`doorstep keys rotate`) got to, per column, so that a stopped
-- run resumes: the key it re-encrypts to and the last row key done.
CREATE TABLE pii_rotation (
    col       text PRIMARY KEY,
    key_id    text NOT NULL,
    last_key  bigint[] NOT NULL,
    done      boolean NOT NULL DEFAULT false,
    rows_done bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- PIPL deletion (docs/privacy.md): the account is frozen at once; after the cooling-off
-- period a job anonymises it (orders, payments and ledger entries stay, their personal
-- fields emptied). ``cancel_hash``: SHA-256 of the code the request answered with, the
-- owner's way to cancel while their tokens are revoked.
CREATE TABLE deletion_requests (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users(id),
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'cancelled', 'done')),
    cancel_hash  text NOT NULL UNIQUE,
    requested_at timestamptz NOT NULL,
    due_at       timestamptz NOT NULL,
    cancelled_at timestamptz,
    done_at      timestamptz,
    CHECK (due_at >= requested_at)
);
-- One pending request per account; the job finds the due ones.
CREATE UNIQUE INDEX deletion_requests_pending ON deletion_requests (user_id)
    WHERE status = 'pending';
CREATE INDEX deletion_requests_due ON deletion_requests (due_at) WHERE status = 'pending';
