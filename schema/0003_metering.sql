-- 0003: exact metering. A counter per user and meter holds the current period's usage and
-- what open reservations hold; admission is one conditional UPDATE on it. Every report is a
-- usage record (unique per user and idempotency key), every reservation a row of its own.

CREATE TABLE meter_counters (
  user_id       TEXT NOT NULL REFERENCES users (id),
  meter         TEXT NOT NULL,                    -- 'tokens' (later 'calls', ...)
  period        TEXT NOT NULL,                    -- UTC calendar month, 'YYYY-MM'
  used          INTEGER NOT NULL DEFAULT 0,
  reserved      INTEGER NOT NULL DEFAULT 0,
  updated_at    TEXT NOT NULL,
  PRIMARY KEY (user_id, meter)
);

CREATE TABLE usage_reservations (
  id            TEXT PRIMARY KEY,                 -- 'rsv_' + random
  user_id       TEXT NOT NULL REFERENCES users (id),
  meter         TEXT NOT NULL,
  period        TEXT NOT NULL,
  amount        INTEGER NOT NULL,
  provider      TEXT,
  model         TEXT,
  request_id    TEXT,                             -- idempotency key, if the client sent one
  status        TEXT NOT NULL CHECK (status IN ('reserved', 'settled', 'expired')),
  expires_at_ms INTEGER NOT NULL,
  used_after    INTEGER NOT NULL,                 -- the counter right after admission
  reserved_after INTEGER NOT NULL,
  created_at    TEXT NOT NULL,
  settled_at    TEXT,
  UNIQUE (user_id, request_id)
);

CREATE INDEX usage_reservations_open ON usage_reservations (user_id, meter, status, expires_at_ms);

CREATE TABLE usage_records (
  id            TEXT PRIMARY KEY,                 -- 'use_' + random
  user_id       TEXT NOT NULL REFERENCES users (id),
  meter         TEXT NOT NULL,
  period        TEXT NOT NULL,
  request_id    TEXT NOT NULL,                    -- idempotency key
  provider      TEXT NOT NULL,
  model         TEXT NOT NULL,
  device_id     TEXT,
  input_tokens  INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  total_tokens  INTEGER NOT NULL,
  reservation_id TEXT,
  -- what became of that reservation: settled (by this report), already_settled, expired,
  -- not_found; NULL without one
  reservation_status TEXT,
  released_tokens INTEGER NOT NULL DEFAULT 0,     -- what the settled reservation gave back
  used_after    INTEGER,                          -- the counter right after recording
  reserved_after INTEGER,
  limit_at      INTEGER,                          -- the plan's limit then (NULL: unlimited)
  created_at    TEXT NOT NULL,
  UNIQUE (user_id, request_id)
);

CREATE INDEX usage_records_by_user_time ON usage_records (user_id, created_at);
