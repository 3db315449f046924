-- 0017: the conversations and speech a site's visitors have through Koby's chat and voice
-- endpoints. Every row leads with org_id and site_id (the site key's, never a body's). The
-- daily roll-up (org_daily_metrics, 0016) is recomputed from these rows, so they are the
-- record: a message is logged when it is answered, a voice request when it is settled.

-- A conversation: made by the first message without a session_id (the id is the server's),
-- continued by every message naming it from the same site.
CREATE TABLE chat_sessions (
  id            TEXT PRIMARY KEY,                   -- 'cs_' + random
  org_id        TEXT NOT NULL REFERENCES orgs (id),
  site_id       TEXT NOT NULL REFERENCES sites (id),
  visitor_id    TEXT,                               -- the widget's visitor label, if it sent one
  started_at    TEXT NOT NULL,                      -- RFC 3339 UTC; its day counts the session
  last_message_at TEXT NOT NULL
);

CREATE INDEX chat_sessions_by_site_day ON chat_sessions (org_id, site_id, started_at);

-- One message of a conversation: the visitor's ('user') or the model's ('assistant'). The
-- assistant's row carries the provider's token counts for the exchange and the latency the
-- visitor saw (request received to answer complete).
CREATE TABLE chat_messages (
  id            TEXT PRIMARY KEY,                   -- 'msg_' + random
  session_id    TEXT NOT NULL REFERENCES chat_sessions (id),
  org_id        TEXT NOT NULL REFERENCES orgs (id),
  site_id       TEXT NOT NULL REFERENCES sites (id),
  role          TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
  content       TEXT NOT NULL,
  input_tokens  INTEGER NOT NULL DEFAULT 0,         -- assistant rows: the prompt as the provider counted it
  output_tokens INTEGER NOT NULL DEFAULT 0,         -- assistant rows: the reply
  latency_ms    INTEGER,                            -- assistant rows
  created_at    TEXT NOT NULL                       -- RFC 3339 UTC
);

CREATE INDEX chat_messages_by_session ON chat_messages (session_id, created_at);
CREATE INDEX chat_messages_by_site_day ON chat_messages (org_id, site_id, created_at);

-- One text-to-speech request that reached the provider: its characters (as metered), whether
-- audio came back, and the latency to the first byte.
CREATE TABLE voice_requests (
  id            TEXT PRIMARY KEY,                   -- 'vr_' + random
  org_id        TEXT NOT NULL REFERENCES orgs (id),
  site_id       TEXT NOT NULL REFERENCES sites (id),
  chars         INTEGER NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
  latency_ms    INTEGER,
  created_at    TEXT NOT NULL                       -- RFC 3339 UTC
);

CREATE INDEX voice_requests_by_site_day ON voice_requests (org_id, site_id, created_at);
