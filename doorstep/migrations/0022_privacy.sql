-- Number masking (docs/privacy.md): the temporary number (AXB binding) that lets an
-- order's customer and its worker call each other during the job only.
CREATE TABLE number_bindings (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    worker_id   bigint NOT NULL,
    out_id      text NOT NULL,          -- our id at the provider: o<order>w<worker>
    subs_id     text NOT NULL,          -- the provider's
    secret_no   text NOT NULL,          -- X, the number both dial
    expires_at  timestamptz NOT NULL,   -- the provider ends it by itself then
    bound_at    timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz             -- null while live
);
-- One live binding per order.
CREATE UNIQUE INDEX number_bindings_live ON number_bindings (order_id) WHERE released_at IS NULL;
