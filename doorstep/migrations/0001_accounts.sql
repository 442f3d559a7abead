-- Accounts: users with roles, refresh tokens, customers' addresses.
CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    phone         text NOT NULL UNIQUE,
    name          text NOT NULL,
    password_hash text NOT NULL,
    roles         text[] NOT NULL CHECK (roles <@ ARRAY['customer','worker','merchant','dispatcher','admin']::text[]
                                         AND cardinality(roles) > 0),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen', 'closed')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE refresh_tokens (
    jti         uuid PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family      uuid NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    replaced_by uuid
);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
