-- 0011: Tollgate's own accounts (email and password). The person is a `users` row with
-- auth_source 'password' and a random, stable external_id (never the email, which can
-- change); these tables hold what only password accounts have. Sessions are `auth_sessions`
-- rows (auth_source 'password', id = the session family id). Times: RFC 3339 UTC text for
-- people, epoch milliseconds (INTEGER) where SQL compares them.

-- One password credential per account user.
CREATE TABLE account_credentials (
  user_id           TEXT PRIMARY KEY REFERENCES users (id),
  email             TEXT NOT NULL UNIQUE,         -- normalised: trimmed, lower-cased
  password_hash     TEXT NOT NULL,                -- Argon2id PHC string (parameters inside)
  email_verified_at TEXT,                         -- NULL until the mailed link is used
  created_at        TEXT NOT NULL,
  updated_at        TEXT NOT NULL
);

-- Refresh tokens: opaque, single-use, rotating. A token is spent when `replaced_by` names
-- its successor; presenting a spent token revokes its whole family (the session).
CREATE TABLE account_refresh_tokens (
  token_hash    TEXT PRIMARY KEY,                 -- SHA-256 hex of the token
  family_id     TEXT NOT NULL,                    -- the session (auth_sessions.id)
  user_id       TEXT NOT NULL REFERENCES users (id),
  replaced_by   TEXT,                             -- hash of the token it was rotated into
  revoked_at    TEXT,                             -- logout, reuse, password change or reset
  expires_at_ms INTEGER NOT NULL,
  created_at    TEXT NOT NULL
);

CREATE INDEX account_refresh_tokens_by_family ON account_refresh_tokens (family_id);
CREATE INDEX account_refresh_tokens_by_user ON account_refresh_tokens (user_id);

-- Single-use tokens mailed in a link: email verification and password reset.
CREATE TABLE account_mailed_tokens (
  token_hash    TEXT PRIMARY KEY,                 -- SHA-256 hex of the token
  purpose       TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
  user_id       TEXT NOT NULL REFERENCES users (id),
  email         TEXT NOT NULL,                    -- the address it was sent to
  expires_at_ms INTEGER NOT NULL,
  used_at       TEXT,                             -- set once, when it is used (or voided)
  created_at    TEXT NOT NULL
);

CREATE INDEX account_mailed_tokens_by_user ON account_mailed_tokens (user_id, purpose);

-- Failed sign-ins, counted exactly: one row per email ('email:<address>') and per client IP
-- ('ip:<address>'), in a fixed window that opens at the first failure.
CREATE TABLE account_login_failures (
  key             TEXT PRIMARY KEY,
  window_start_ms INTEGER NOT NULL,
  failures        INTEGER NOT NULL
);

-- Mail to send. A row is written in the same batch as the token its link carries; once sent
-- its bodies are cleared (the link is a secret). Failed sends are retried by the scheduled
-- event.
CREATE TABLE mail_outbox (
  id          TEXT PRIMARY KEY,                   -- 'mail_' + random; the API's idempotency key
  to_address  TEXT NOT NULL,
  subject     TEXT NOT NULL,
  text_body   TEXT,                               -- NULL once sent
  html_body   TEXT,                               -- NULL once sent
  status      TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'logged', 'failed')),
  attempts    INTEGER NOT NULL DEFAULT 0,
  last_error  TEXT,                               -- the mail API's status, never a body
  provider_id TEXT,                               -- the mail API's id for the message
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);

CREATE INDEX mail_outbox_by_status ON mail_outbox (status, created_at);
