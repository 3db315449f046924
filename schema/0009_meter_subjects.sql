-- 0009: meter any subject, not only a user. The three meter tables of 0003 are rebuilt keyed
-- by a subject instead of users(id), so a platform's end users and an org's sites (later
-- issues) go through the same counters, reservations and records as users do.
--
-- The decision: a subject is the pair (subject_kind, subject_id), and every key and index
-- leads with both. subject_kind says what subject_id names: 'user' (a users.id, 'usr_...',
-- so a user's rows carry over unchanged), 'end_user' (a platform's own customer: the
-- platform's id and the end user's external id) or 'site' (an org's site key). A kind
-- column rather than kind-prefixed ids because the database itself then keeps two kinds
-- from ever sharing a counter, whatever their ids look like (an end user's external id is
-- chosen by the platform, not by us), and the CHECK says which kinds exist. 'end_user' and
-- 'site' are allowed now, before the code writes them, because SQLite cannot change a CHECK
-- without rebuilding the table again; the code writes only 'user' until their issues land.
--
-- There is no foreign key to users any more (an end user or a site has no users row), so
-- the rows of a user stay when the user goes, exactly as before: deleting a user is a soft
-- delete (users.status = 'deleted'), which never touched these rows. No other table refers
-- to these three, so they are dropped and renamed without `PRAGMA defer_foreign_keys` (the
-- D1 way to rebuild a table that others reference). Each table is rebuilt the SQLite way:
-- create the new shape, copy every row, drop the old, rename the new; the indexes (dropped
-- with the old tables) are made again, equivalent to 0003's with the subject in front.

CREATE TABLE meter_counters_0009 (
  subject_kind  TEXT NOT NULL CHECK (subject_kind IN ('user', 'end_user', 'site')),
  subject_id    TEXT NOT NULL,                    -- for 'user': users.id
  meter         TEXT NOT NULL,                    -- 'tokens' (later 'calls', ...)
  period        TEXT NOT NULL,                    -- UTC calendar month, 'YYYY-MM'
  used          INTEGER NOT NULL DEFAULT 0,
  reserved      INTEGER NOT NULL DEFAULT 0,
  updated_at    TEXT NOT NULL,
  PRIMARY KEY (subject_kind, subject_id, meter)
);

INSERT INTO meter_counters_0009 (subject_kind, subject_id, meter, period, used, reserved,
                                 updated_at)
  SELECT 'user', user_id, meter, period, used, reserved, updated_at FROM meter_counters;

DROP TABLE meter_counters;
ALTER TABLE meter_counters_0009 RENAME TO meter_counters;

CREATE TABLE usage_reservations_0009 (
  id            TEXT PRIMARY KEY,                 -- 'rsv_' + random
  subject_kind  TEXT NOT NULL CHECK (subject_kind IN ('user', 'end_user', 'site')),
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

INSERT INTO usage_reservations_0009 (id, subject_kind, subject_id, meter, period, amount,
                                     provider, model, request_id, status, expires_at_ms,
                                     used_after, reserved_after, created_at, settled_at)
  SELECT id, 'user', user_id, meter, period, amount, provider, model, request_id, status,
         expires_at_ms, used_after, reserved_after, created_at, settled_at
  FROM usage_reservations;

DROP TABLE usage_reservations;
ALTER TABLE usage_reservations_0009 RENAME TO usage_reservations;

CREATE INDEX usage_reservations_open
  ON usage_reservations (subject_kind, subject_id, meter, status, expires_at_ms);

CREATE TABLE usage_records_0009 (
  id            TEXT PRIMARY KEY,                 -- 'use_' + random
  subject_kind  TEXT NOT NULL CHECK (subject_kind IN ('user', 'end_user', 'site')),
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

INSERT INTO usage_records_0009 (id, subject_kind, subject_id, meter, period, request_id,
                                provider, model, device_id, input_tokens, output_tokens,
                                total_tokens, reservation_id, reservation_status,
                                released_tokens, used_after, reserved_after, limit_at,
                                created_at)
  SELECT id, 'user', user_id, meter, period, request_id, provider, model, device_id,
         input_tokens, output_tokens, total_tokens, reservation_id, reservation_status,
         released_tokens, used_after, reserved_after, limit_at, created_at
  FROM usage_records;

DROP TABLE usage_records;
ALTER TABLE usage_records_0009 RENAME TO usage_records;

CREATE INDEX usage_records_by_subject_time
  ON usage_records (subject_kind, subject_id, created_at);
