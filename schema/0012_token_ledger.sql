-- 0012: the token ledger. Append-only: every credit and debit of a user's tokens is one row,
-- and the balance is the newest row's balance_after (0 without rows). Rows are inserted by one
-- conditional statement that reads the newest balance and refuses to go below zero, so the
-- balance is exact under any concurrency; rows are never updated or deleted.

CREATE TABLE token_ledger (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order entries were made in
  user_id         TEXT NOT NULL REFERENCES users (id),
  kind            TEXT NOT NULL CHECK (kind IN ('purchase', 'use', 'grant', 'social_reward', 'refund', 'adjustment')),
  amount          INTEGER NOT NULL,                   -- signed: credits > 0, debits < 0
  balance_after   INTEGER NOT NULL CHECK (balance_after >= 0),
  shortfall       INTEGER NOT NULL DEFAULT 0,         -- a refund's part that could not be debited (balance too low)
  reason          TEXT,                               -- the caller's or the system's words
  reference       TEXT,                               -- a client reference, a pack's payment_intent (pi_...), a social task id
  idempotency_key TEXT NOT NULL,                      -- namespaced: req:, admin:, social:, stripe:pi:, stripe:refund:
  actor           TEXT NOT NULL,                      -- usr_... for a user or admin; system:stripe for Stripe's events
  created_at      TEXT NOT NULL,                      -- RFC 3339 UTC
  UNIQUE (user_id, idempotency_key)
);

CREATE INDEX token_ledger_by_user ON token_ledger (user_id, id);
-- Refunds find their purchase by its key (stripe:pi:...), whoever owns it.
CREATE INDEX token_ledger_by_key ON token_ledger (idempotency_key);
