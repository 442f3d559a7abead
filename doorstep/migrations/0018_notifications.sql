-- Notifications (issue 15, section 3): the in-app inbox, per-user settings and
-- preferences, SMS messages and their delivery, login codes, and the SMS sandbox's
-- outbox (the sandbox gateway is a local stand-in for a provider: see docs/notifications.md).

-- A user's language, quiet hours (local minutes of the day, in ``timezone``) and, per
-- kind of notification, whether SMS is wanted (absent: the kind's default).
CREATE TABLE notification_settings (
    user_id     bigint PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    language    text NOT NULL DEFAULT 'zh' CHECK (language IN ('zh', 'en')),
    timezone    text NOT NULL DEFAULT 'Asia/Shanghai',
    quiet_start smallint CHECK (quiet_start BETWEEN 0 AND 1439),
    quiet_end   smallint CHECK (quiet_end BETWEEN 0 AND 1439),
    sms         jsonb NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

-- The inbox. ``key`` is the effect's identity (event id, recipient, …): a redelivered
-- event finds its row and adds nothing.
CREATE TABLE notifications (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key        text NOT NULL UNIQUE,
    kind       text NOT NULL,
    event_id   bigint,
    order_id   bigint,
    title      text NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz
);
CREATE INDEX notifications_user ON notifications (user_id, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL;

-- SMS we send: queued (a job will send it at ``not_before``), sent (the provider took
-- it), delivered / undelivered (its receipt), failed (gave up).
CREATE TABLE sms_messages (
    id            bigserial PRIMARY KEY,
    key           text NOT NULL UNIQUE,
    user_id       bigint REFERENCES users(id) ON DELETE SET NULL,
    phone         text NOT NULL,
    template_code text NOT NULL,
    params        jsonb NOT NULL,
    not_before    timestamptz NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'sent', 'delivered', 'undelivered', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    biz_id        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    reported_at   timestamptz
);
CREATE INDEX sms_messages_biz ON sms_messages (biz_id) WHERE biz_id IS NOT NULL;

-- One-time login codes: only a keyed hash of the code is kept.
CREATE TABLE sms_codes (
    id         bigserial PRIMARY KEY,
    phone      text NOT NULL,
    code_hash  text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    failures   integer NOT NULL DEFAULT 0
);
CREATE INDEX sms_codes_phone ON sms_codes (phone, id DESC);

-- The sandbox gateway's own record of what it "sent" (a provider's database, kept here
-- so the demo and the tests can read it). ``out_id`` makes a retried request idempotent.
CREATE TABLE sms_sandbox_outbox (
    biz_id        text PRIMARY KEY,
    out_id        text NOT NULL UNIQUE,
    phone         text NOT NULL,
    sign_name     text NOT NULL,
    template_code text NOT NULL,
    params        jsonb NOT NULL,
    text          text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    reported_at   timestamptz
);
CREATE INDEX sms_sandbox_outbox_phone ON sms_sandbox_outbox (phone, received_at);
