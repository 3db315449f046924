-- 0010: the audit log. One row per state-changing action: who did it (a user, or the
-- system acting for a provider's event), what, to what, in which request, and a small
-- detail object that never holds a secret. Rows are only ever inserted.

CREATE TABLE audit_log (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,    -- the order actions were recorded in
  actor_kind    TEXT NOT NULL CHECK (actor_kind IN ('user', 'system', 'anonymous')),
  actor_id      TEXT,                                 -- usr_... for a user; stripe, clerk, scheduler for the system
  action        TEXT NOT NULL,                        -- e.g. account.registered, tokens.used
  target_kind   TEXT,                                 -- user, api_key, provider_key, session, webhook_event, ...
  target_id     TEXT,
  request_id    TEXT,                                 -- the request (or event) that caused it
  detail        TEXT NOT NULL DEFAULT '{}',           -- a JSON object, at most 2 KiB, no secrets
  created_at    TEXT NOT NULL                         -- RFC 3339 UTC
);

CREATE INDEX audit_log_by_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_by_action ON audit_log (action, id);
CREATE INDEX audit_log_by_target ON audit_log (target_id, id);
CREATE INDEX audit_log_by_time ON audit_log (created_at, id);
