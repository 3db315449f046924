-- 0015: workflows. A workflow is a trigger and an outgoing webhook, owned by an org or by a
-- user. When a trigger fires, a delivery per enabled workflow of the owner is stored BEFORE
-- it is sent (signed per Standard Webhooks), sent once in the background of the request that
-- fired it, and retried by the scheduled event with exponential backoff. Every query leads
-- with the owner, read from the caller's credential, never from a body.

CREATE TABLE workflows (
  id            TEXT PRIMARY KEY,                   -- 'wf_' + random
  owner_kind    TEXT NOT NULL CHECK (owner_kind IN ('org', 'user')),
  owner_id      TEXT NOT NULL,                      -- orgs.id ('org_...') or users.id ('usr_...')
  trigger       TEXT NOT NULL CHECK (trigger IN ('usage.threshold', 'chat.session.started')),
  url           TEXT NOT NULL,                      -- https (http only where ENVIRONMENT is local)
  enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  secret_sealed TEXT NOT NULL,                      -- the whsec_ secret, sealed (core::sealed, context 'workflow:<id>'); shown once
  created_at    TEXT NOT NULL,                      -- RFC 3339 UTC
  updated_at    TEXT NOT NULL
);

CREATE INDEX workflows_by_owner ON workflows (owner_kind, owner_id, trigger, created_at);

-- A threshold of a monthly limit reached, once per owner, meter, period and threshold: the
-- request whose INSERT OR IGNORE took is the one that creates the deliveries, so concurrent
-- usage alerts once.
CREATE TABLE usage_thresholds (
  owner_kind    TEXT NOT NULL,
  owner_id      TEXT NOT NULL,
  meter         TEXT NOT NULL,                      -- 'tokens' (later 'voice_chars')
  period        TEXT NOT NULL,                      -- 'YYYY-MM' (UTC)
  threshold     INTEGER NOT NULL,                   -- percent of the limit: 80 or 100
  used          INTEGER NOT NULL,                   -- the counter right after the crossing
  limit_at      INTEGER NOT NULL,                   -- the limit it was measured against
  created_at    TEXT NOT NULL,
  PRIMARY KEY (owner_kind, owner_id, meter, period, threshold)
);

-- One event sent to one workflow. id is the Standard Webhooks `webhook-id`; payload is the
-- body exactly as signed and sent (every attempt sends the same bytes).
CREATE TABLE workflow_deliveries (
  id            TEXT PRIMARY KEY,                   -- 'msg_' + random
  workflow_id   TEXT NOT NULL REFERENCES workflows (id),
  event_key     TEXT NOT NULL,                      -- what fired it, e.g. 'user:usr_..:tokens:2026-11:80'
  event_type    TEXT NOT NULL,                      -- 'usage.threshold', ...
  payload       TEXT NOT NULL,
  status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts      INTEGER NOT NULL DEFAULT 0,
  next_attempt_at_ms INTEGER,                       -- when the schedule may try again (epoch ms); NULL once final
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL,
  UNIQUE (workflow_id, event_key)
);

CREATE INDEX workflow_deliveries_due ON workflow_deliveries (status, next_attempt_at_ms);
CREATE INDEX workflow_deliveries_by_workflow ON workflow_deliveries (workflow_id, created_at);

-- Each attempt at a delivery: the receiver's status code, or why there was none.
CREATE TABLE workflow_delivery_attempts (
  delivery_id   TEXT NOT NULL REFERENCES workflow_deliveries (id),
  attempt       INTEGER NOT NULL,                   -- 1..8
  status_code   INTEGER,                            -- the receiver's answer; NULL on a network error or timeout
  error         TEXT,                               -- why it failed (no answer, non-2xx), NULL when delivered
  duration_ms   INTEGER NOT NULL,
  at            TEXT NOT NULL,                      -- RFC 3339 UTC
  PRIMARY KEY (delivery_id, attempt)
);
