-- 0007: API key scopes, and sign-in sessions keyed by who they belong to.

-- What a key may be used for: scope names separated by single spaces, in the order
-- usage keys billing admin. Keys created before scopes existed act for metering only.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'usage';

-- A session id is only unique at its source and for its user: an HMAC token names its own
-- `sid`, which may equal another user's Clerk session id. Keyed by (source, user, id), one
-- user's sign-out can never end another user's session. SQLite cannot change a primary key
-- in place, so the table is rebuilt.
CREATE TABLE auth_sessions_keyed (
  auth_source   TEXT NOT NULL CHECK (auth_source IN ('clerk', 'hmac', 'password')),
  external_user_id TEXT NOT NULL,
  id            TEXT NOT NULL,                    -- the session id at the source
  status        TEXT NOT NULL CHECK (status IN ('active', 'ended')),
  ended_reason  TEXT,                             -- signout, session.ended, session.revoked, ...
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL,
  PRIMARY KEY (auth_source, external_user_id, id)
);

INSERT INTO auth_sessions_keyed
  (auth_source, external_user_id, id, status, ended_reason, created_at, updated_at)
SELECT auth_source, external_user_id, id, status, ended_reason, created_at, updated_at
FROM auth_sessions;

-- Dropping the table drops its index by user too: the new primary key starts with
-- (auth_source, external_user_id), so it serves those look-ups.
DROP TABLE auth_sessions;

ALTER TABLE auth_sessions_keyed RENAME TO auth_sessions;
