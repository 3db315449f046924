-- 0002: identity beyond the user row: API keys, device sessions, webhook events, and the
-- profile fields and sync marker Clerk webhooks maintain.

-- When the source (Clerk) last changed this user, epoch ms: a webhook older than what is
-- stored never overwrites it (deliveries can arrive out of order).
ALTER TABLE users ADD COLUMN source_updated_at INTEGER;
ALTER TABLE users ADD COLUMN avatar_url TEXT;

-- Usernames are unique in any letter case; the profile update checks this in the same
-- statement that writes (not a unique index: usernames copied from a token or from Clerk
-- at sign-up must never make sign-up fail).
CREATE INDEX users_by_username ON users (username COLLATE NOCASE);

-- User API keys (tg_live_...). The key itself is never stored: only its SHA-256 hash and a
-- masked form for display. Revoked keys stay for the audit trail.
CREATE TABLE api_keys (
  id            TEXT PRIMARY KEY,                 -- 'key_' + random
  user_id       TEXT NOT NULL REFERENCES users (id),
  name          TEXT NOT NULL,
  key_hash      TEXT NOT NULL UNIQUE,             -- hex SHA-256 of the whole key
  masked        TEXT NOT NULL,                    -- tg_live_AbCd****WxYz
  created_at    TEXT NOT NULL,
  last_used_at  TEXT,
  revoked_at    TEXT
);

CREATE INDEX api_keys_by_user ON api_keys (user_id, revoked_at);

-- Sign-in sessions, one per device: a Clerk session (`sid`) or an HMAC token's `sid`/`jti`.
-- A row exists once a session is known to have started or ended; a token whose session is
-- 'ended' is refused.
CREATE TABLE auth_sessions (
  id            TEXT PRIMARY KEY,                 -- the session id at the source
  auth_source   TEXT NOT NULL CHECK (auth_source IN ('clerk', 'hmac', 'password')),
  external_user_id TEXT NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('active', 'ended')),
  ended_reason  TEXT,                             -- signout, session.ended, session.revoked, ...
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL
);

CREATE INDEX auth_sessions_by_user ON auth_sessions (auth_source, external_user_id);

-- Every webhook delivery, stored before it is acknowledged. (provider, event_id) is unique,
-- so a repeated delivery finds its first copy and changes nothing.
CREATE TABLE webhook_events (
  provider      TEXT NOT NULL CHECK (provider IN ('clerk', 'stripe')),
  event_id      TEXT NOT NULL,
  event_type    TEXT NOT NULL,
  payload       TEXT NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('received', 'processed', 'ignored', 'failed')),
  attempts      INTEGER NOT NULL DEFAULT 0,
  error         TEXT,
  received_at   TEXT NOT NULL,
  processed_at  TEXT,
  PRIMARY KEY (provider, event_id)
);

CREATE INDEX webhook_events_by_status ON webhook_events (provider, status, received_at);
