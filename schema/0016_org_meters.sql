-- 0016: orgs are metered, and their daily activity is kept. An org's chat tokens and voice
-- characters count against its plan's monthly limits under subject ('org', orgs.id): the
-- three meter tables are rebuilt once more (SQLite cannot change a CHECK in place) with
-- 'org' among the kinds, the same way 0009 rebuilt them; every row is copied as it is.

CREATE TABLE meter_counters_0016 (
  subject_kind  TEXT NOT NULL CHECK (subject_kind IN ('user', 'end_user', 'site', 'org')),
  subject_id    TEXT NOT NULL,                    -- for 'user': users.id
  meter         TEXT NOT NULL,                    -- 'tokens' (later 'calls', ...)
  period        TEXT NOT NULL,                    -- UTC calendar month, 'YYYY-MM'
  used          INTEGER NOT NULL DEFAULT 0,
  reserved      INTEGER NOT NULL DEFAULT 0,
  updated_at    TEXT NOT NULL,
  PRIMARY KEY (subject_kind, subject_id, meter)
);

INSERT INTO meter_counters_0016 (subject_kind, subject_id, meter, period, used, reserved, updated_at)
  SELECT subject_kind, subject_id, meter, period, used, reserved, updated_at FROM meter_counters;

DROP TABLE meter_counters;
ALTER TABLE meter_counters_0016 RENAME TO meter_counters;

CREATE TABLE usage_reservations_0016 (
  id            TEXT PRIMARY KEY,                 -- 'rsv_' + random
  subject_kind  TEXT NOT NULL CHECK (subject_kind IN ('user', 'end_user', 'site', 'org')),
  subject_id    TEXT NOT NULL,
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
  UNIQUE (subject_kind, subject_id, request_id)
);

INSERT INTO usage_reservations_0016 (id, subject_kind, subject_id, meter, period, amount, provider, model, request_id, status, expires_at_ms, used_after, reserved_after, created_at, settled_at)
  SELECT id, subject_kind, subject_id, meter, period, amount, provider, model, request_id, status, expires_at_ms, used_after, reserved_after, created_at, settled_at FROM usage_reservations;

DROP TABLE usage_reservations;
ALTER TABLE usage_reservations_0016 RENAME TO usage_reservations;

CREATE INDEX usage_reservations_open
  ON usage_reservations (subject_kind, subject_id, meter, status, expires_at_ms);

CREATE TABLE usage_records_0016 (
  id            TEXT PRIMARY KEY,                 -- 'use_' + random
  subject_kind  TEXT NOT NULL CHECK (subject_kind IN ('user', 'end_user', 'site', 'org')),
  subject_id    TEXT NOT NULL,
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
  UNIQUE (subject_kind, subject_id, request_id)
);

INSERT INTO usage_records_0016 (id, subject_kind, subject_id, meter, period, request_id, provider, model, device_id, input_tokens, output_tokens, total_tokens, reservation_id, reservation_status, released_tokens, used_after, reserved_after, limit_at, created_at)
  SELECT id, subject_kind, subject_id, meter, period, request_id, provider, model, device_id, input_tokens, output_tokens, total_tokens, reservation_id, reservation_status, released_tokens, used_after, reserved_after, limit_at, created_at FROM usage_records;

DROP TABLE usage_records;
ALTER TABLE usage_records_0016 RENAME TO usage_records;

CREATE INDEX usage_records_by_subject_time
  ON usage_records (subject_kind, subject_id, created_at);

-- Chat and voice activity per org, site and UTC day, rolled up by the scheduled event (the
-- next issue fills it; a re-run recomputes a day, never adds to it). The portal's overview
-- and insights read it.
CREATE TABLE org_daily_metrics (
  org_id        TEXT NOT NULL REFERENCES orgs (id),
  site_id       TEXT NOT NULL REFERENCES sites (id),
  day           TEXT NOT NULL,                    -- 'YYYY-MM-DD', UTC
  sessions      INTEGER NOT NULL DEFAULT 0,
  messages      INTEGER NOT NULL DEFAULT 0,
  latency_avg_ms INTEGER,                         -- NULL: no answered message that day
  latency_p95_ms INTEGER,
  tokens        INTEGER NOT NULL DEFAULT 0,
  voice_chars   INTEGER NOT NULL DEFAULT 0,
  computed_at   TEXT NOT NULL,
  PRIMARY KEY (org_id, site_id, day)
);

CREATE INDEX org_daily_metrics_by_day ON org_daily_metrics (org_id, day);
