-- 0008: look-ups of OpenRouter keys by name. A key create that timed out (or failed in a way
-- where the key may exist upstream) leaves the name it created the key under
-- ('tollgate <environment> <user id>'); the scheduled sweep lists the keys at OpenRouter and
-- queues every key with that name that is not the user's current key for deletion.

CREATE TABLE provider_key_lookups (
  name           TEXT PRIMARY KEY,                -- the key name to look for
  provider       TEXT NOT NULL DEFAULT 'openrouter',
  user_id        TEXT NOT NULL,
  requests       INTEGER NOT NULL DEFAULT 1,      -- times queued; resolving removes only those seen
  attempts       INTEGER NOT NULL DEFAULT 0,
  last_error     TEXT,
  next_attempt_ms INTEGER NOT NULL,
  claimed_until_ms INTEGER,                       -- a sweep is working on it until then
  created_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL
);

CREATE INDEX provider_key_lookups_due ON provider_key_lookups (next_attempt_ms);
