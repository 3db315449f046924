-- 0013: platforms. A developer's platform meters its own end users through Tollgate: it holds
-- a platform key, a list of tiers, and end users known only within it. Every platform-scoped
-- row leads with platform_id, and every query reads it from the caller's key (or end-user
-- token), never from the request: a platform never sees another's rows.

CREATE TABLE platforms (
  id            TEXT PRIMARY KEY,                   -- 'plt_' + random
  -- The owner: a Tollgate user (a developer signed in with the operator's identity), or only
  -- an email (public registration). At least one is set; each owns at most one platform.
  owner_user_id TEXT UNIQUE REFERENCES users (id),
  owner_email   TEXT UNIQUE COLLATE NOCASE,
  name          TEXT,
  tiers         TEXT NOT NULL,                      -- JSON: the tier list; the first is where end users start
  created_at    TEXT NOT NULL,                      -- RFC 3339 UTC
  updated_at    TEXT NOT NULL,
  CHECK (owner_user_id IS NOT NULL OR owner_email IS NOT NULL)
);

-- Platform keys ('pk_live_' + random), stored as their SHA-256 only: shown once, when made.
-- A platform has at most one live key; a new one revokes the one before.
CREATE TABLE platform_keys (
  id            TEXT PRIMARY KEY,                   -- 'pkey_' + random
  platform_id   TEXT NOT NULL REFERENCES platforms (id),
  key_hash      TEXT NOT NULL UNIQUE,               -- hex SHA-256 of the whole key
  masked        TEXT NOT NULL,                      -- shown instead of the key: pk_live_AbCd****WxYz
  created_at    TEXT NOT NULL,
  last_used_at  TEXT,                               -- written at most once a minute
  revoked_at    TEXT
);

CREATE UNIQUE INDEX platform_keys_one_live ON platform_keys (platform_id) WHERE revoked_at IS NULL;

-- A platform's end users, as the platform names them (X-User-Id, or the end-user token's
-- subject). Their calls are metered under subject ('end_user', '<platform_id>:<end_user_id>').
CREATE TABLE platform_end_users (
  platform_id   TEXT NOT NULL REFERENCES platforms (id),
  end_user_id   TEXT NOT NULL,
  tier          TEXT,                               -- bought through Checkout; NULL: the platform's first tier
  tier_changed_at_ms INTEGER,                       -- the Stripe event's time that set it (later events win)
  stripe_customer_id TEXT,
  first_seen_at TEXT NOT NULL,                      -- their first counted call (or purchase)
  last_seen_at  TEXT NOT NULL,                      -- their latest counted call
  PRIMARY KEY (platform_id, end_user_id)
);

-- Payments of a platform's end users (paid Checkout Sessions, and the invoices of their
-- subscriptions' renewals), counted once each: the platform's revenue.
CREATE TABLE platform_payments (
  id            TEXT PRIMARY KEY,                   -- the Checkout Session's (cs_...) or the invoice's (in_...) id
  platform_id   TEXT NOT NULL REFERENCES platforms (id),
  end_user_id   TEXT NOT NULL,
  tier          TEXT NOT NULL,                      -- the tier paid for ('' if an invoice names none)
  amount_cents  INTEGER NOT NULL,
  currency      TEXT NOT NULL,
  paid_at       TEXT NOT NULL
);

CREATE INDEX platform_payments_by_platform ON platform_payments (platform_id, paid_at);

-- Public registrations per client IP and hour, admitted by one conditional UPSERT.
CREATE TABLE platform_signup_windows (
  ip            TEXT PRIMARY KEY,
  window_start_ms INTEGER NOT NULL,
  signups       INTEGER NOT NULL
);
