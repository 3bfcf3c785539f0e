-- API tokens for the gateway. Only the SHA-256 of a token is stored: tokens are
-- 256-bit random secrets, so a fast hash is enough and lookups stay indexed.
CREATE TABLE api_tokens (
    name         text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_.@-]{0,63}$'),
    role         text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    token_sha256 bytea       NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    prefix       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
