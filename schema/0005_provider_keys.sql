-- 0005: provider keys. Puku's OpenRouter keys bought with credits (one account per user:
-- the current key, sealed, and the credit balance), the keys waiting to be deleted at
-- OpenRouter, a ledger of every credit change, and Sokuji's pool of pre-created keys.
-- Money is integer micro-USD. Keys that are handed back are sealed with AES-256-GCM
-- (`v1.<key id>.<...>`); no column ever holds a plaintext key.

CREATE TABLE credit_accounts (
  user_id        TEXT PRIMARY KEY REFERENCES users (id),
  key_hash       TEXT,                            -- OpenRouter's id of the current key; NULL before the first
  key_sealed     TEXT,                            -- the key, sealed for 'openrouter:<user_id>:<key_hash>'
  key_label      TEXT,                            -- masked, for lists
  key_limit      INTEGER NOT NULL DEFAULT 0,      -- the key's USD limit
  key_usage      INTEGER NOT NULL DEFAULT 0,      -- its cumulative spend at the last look
  key_remaining  INTEGER NOT NULL DEFAULT 0,      -- what was left of its limit at the last look
  credits        INTEGER NOT NULL DEFAULT 0 CHECK (credits >= 0),
  resets         INTEGER NOT NULL DEFAULT 0,
  rotations      INTEGER NOT NULL DEFAULT 0,
  version        INTEGER NOT NULL DEFAULT 0,      -- +1 on every settled change
  lock_id        TEXT,                            -- held while one request talks to OpenRouter
  lock_expires_ms INTEGER,
  checked_ms     INTEGER,                         -- when a request last settled this account
  created_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL
);

CREATE TABLE provider_key_deletions (
  key_hash       TEXT PRIMARY KEY,
  provider       TEXT NOT NULL DEFAULT 'openrouter',
  user_id        TEXT,
  reason         TEXT NOT NULL,                   -- 'rotated', 'reset', 'orphaned'
  attempts       INTEGER NOT NULL DEFAULT 0,
  last_error     TEXT,
  next_attempt_ms INTEGER NOT NULL,
  claimed_until_ms INTEGER,                       -- a sweep is working on it until then
  created_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL
);

CREATE INDEX provider_key_deletions_due ON provider_key_deletions (next_attempt_ms);

CREATE TABLE credit_ledger (
  id             TEXT PRIMARY KEY,                -- 'cl_' + random
  user_id        TEXT NOT NULL REFERENCES users (id),
  kind           TEXT NOT NULL CHECK (kind IN ('grant', 'usage', 'reset', 'adjustment')),
  amount         INTEGER NOT NULL,                -- signed change of the balance
  balance_after  INTEGER NOT NULL,
  reason         TEXT,
  actor_id       TEXT,                            -- the admin who adjusted, if any
  key_hash       TEXT,
  idempotency_key TEXT,
  created_at     TEXT NOT NULL,
  UNIQUE (user_id, idempotency_key)
);

CREATE INDEX credit_ledger_by_user ON credit_ledger (user_id, created_at);

CREATE TABLE provider_keys (
  id             TEXT PRIMARY KEY,                -- 'pk_' + random
  provider       TEXT NOT NULL,                   -- 'openai', 'gemini', ...
  tier           TEXT NOT NULL,                   -- a plan id
  key_sealed     TEXT NOT NULL,                   -- sealed for 'pool:<id>'
  key_sha256     TEXT NOT NULL UNIQUE,            -- so the same key is not loaded twice
  masked         TEXT NOT NULL,
  label          TEXT,
  created_by     TEXT,
  retired_at     TEXT,
  created_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL
);

CREATE INDEX provider_keys_pick ON provider_keys (provider, tier, retired_at);

CREATE TABLE provider_key_assignments (
  user_id        TEXT NOT NULL REFERENCES users (id),
  provider       TEXT NOT NULL,
  key_id         TEXT NOT NULL REFERENCES provider_keys (id),
  assigned_at    TEXT NOT NULL,
  PRIMARY KEY (user_id, provider)
);

CREATE INDEX provider_key_assignments_by_key ON provider_key_assignments (key_id);
