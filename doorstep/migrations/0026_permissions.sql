-- Permissions (issue 18 §6): roles an admin makes, scoped grants, their audit;
-- merchants (§5): self-onboarding with a business licence, their services and prices,
-- orders routed to them.

-- Roles made by an admin (the templates live in permissions/rules.py, not here).
CREATE TABLE roles (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{2,39}$'),
    title       text NOT NULL,
    permissions text[] NOT NULL CHECK (cardinality(permissions) > 0),
    scopes      text[] NOT NULL CHECK (scopes <@ ARRAY['platform','city','merchant']::text[]
                                       AND cardinality(scopes) > 0),
    created_by  bigint REFERENCES users(id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A role held by a user in a scope: 'platform', 'city:<id>' or 'merchant:<id>'.
CREATE TABLE role_grants (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        text NOT NULL,
    scope       text NOT NULL CHECK (scope ~ '^(platform|city:[a-z][a-z0-9_-]{0,39}|merchant:[0-9]+)$'),
    granted_by  bigint REFERENCES users(id),
    granted_at  timestamptz NOT NULL DEFAULT now(),
    revoked_by  bigint REFERENCES users(id),
    revoked_at  timestamptz
);
CREATE UNIQUE INDEX role_grants_live ON role_grants (user_id, role, scope) WHERE revoked_at IS NULL;
CREATE INDEX role_grants_role ON role_grants (role) WHERE revoked_at IS NULL;

-- Every change to roles and grants, append-only.
CREATE TABLE permission_audit (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor_id   bigint REFERENCES users(id),
    action     text NOT NULL CHECK (action IN ('grant', 'revoke', 'role.create', 'role.delete',
                                               'merchant.apply', 'merchant.approve',
                                               'merchant.reject')),
    user_id    bigint REFERENCES users(id),
    role       text,
    scope      text,
    detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX permission_audit_user ON permission_audit (user_id, id);

-- A merchant (商家) is its owner's account: teams.merchant_id is this id.
CREATE TABLE merchants (
    id              bigint PRIMARY KEY REFERENCES users(id),
    name            text NOT NULL,
    city_id         text NOT NULL REFERENCES cities(id),
    licence_number  text NOT NULL UNIQUE,
    licence_file_id bigint REFERENCES files(id) ON DELETE SET NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'approved', 'rejected')),
    reason          text NOT NULL DEFAULT '',
    reviewed_by     bigint REFERENCES users(id),
    reviewed_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchants_status ON merchants (status, id);

-- The services a merchant offers, at its own price (within the catalog's range).
CREATE TABLE merchant_services (
    merchant_id  bigint NOT NULL REFERENCES merchants(id) ON DELETE CASCADE,
    service_code text NOT NULL REFERENCES services(code),
    price_minor  integer NOT NULL CHECK (price_minor >= 0),
    active       boolean NOT NULL DEFAULT true,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, service_code)
);

-- An order routed to a merchant: its staff serve it, dispatched by the merchant; the
-- platform's engine leaves it alone until the merchant overflows it (merchant_id NULL).
ALTER TABLE orders ADD COLUMN merchant_id bigint REFERENCES merchants(id);
CREATE INDEX orders_merchant ON orders (merchant_id, id) WHERE merchant_id IS NOT NULL;

-- A city sub-site's own price for a catalog service (its operator sets it); booking in
-- the city uses it instead of the catalog's.
CREATE TABLE city_service_prices (
    city_id      text NOT NULL REFERENCES cities(id),
    service_code text NOT NULL REFERENCES services(code),
    price_minor  integer NOT NULL CHECK (price_minor >= 0),
    updated_by   bigint REFERENCES users(id),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (city_id, service_code)
);
