-- Security state that must survive the loss of Redis (issue 14): Redis only caches it.
--
-- Logged-out access tokens, until they would have expired anyway.
CREATE TABLE revoked_access_tokens (
    jti        uuid PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL
);
CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens (expires_at);

-- Until when the last token-version bump (freeze, close) matters: the bump time plus the
-- access-token lifetime then in force. Tokens issued before the bump have expired after
-- it, so only bumps not yet past this need caching.
ALTER TABLE users ADD COLUMN token_version_until timestamptz;
CREATE INDEX users_token_version_until ON users (token_version_until)
    WHERE token_version_until IS NOT NULL;

-- Failed logins per phone and client network (an IPv4 address or an IPv6 /64), for the
-- login's slow-down: per pair, per phone (the sum over pairs) and per network.
-- ``last_success_at`` marks a network the phone's owner logged in from.
CREATE TABLE login_failures (
    phone            text NOT NULL,
    ip               text NOT NULL,
    failures         integer NOT NULL DEFAULT 0,
    first_failure_at timestamptz,
    last_failure_at  timestamptz,
    last_success_at  timestamptz,
    PRIMARY KEY (phone, ip)
);
CREATE INDEX login_failures_ip ON login_failures (ip, last_failure_at);
CREATE INDEX login_failures_last ON login_failures (last_failure_at);

-- Fixed-window counters (registrations per client network).
CREATE TABLE rate_windows (
    bucket       text NOT NULL,
    key          text NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE INDEX rate_windows_start ON rate_windows (window_start);
