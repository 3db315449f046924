-- 0001: the identity root. One row per person, whatever proved who they are
-- (Clerk session, HMAC JWT, Tollgate's own accounts); every later table hangs off users.id.
-- Times are RFC 3339 UTC text; booleans would be 0/1, so state is an enumerated text column.

CREATE TABLE users (
  id            TEXT PRIMARY KEY,                 -- Tollgate's id, 'usr_' + random
  auth_source   TEXT NOT NULL CHECK (auth_source IN ('clerk', 'hmac', 'password')),
  external_id   TEXT NOT NULL,                    -- the subject at that source
  email         TEXT,
  username      TEXT,
  display_name  TEXT,
  plan          TEXT NOT NULL DEFAULT 'free',
  status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL,
  UNIQUE (auth_source, external_id)
);

CREATE INDEX users_by_email ON users (email);
