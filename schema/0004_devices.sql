-- 0004: the devices a user is signed in on (Sokuji's sessions: Chrome extension, Electron
-- app, web). A device is active while it was seen in the last 24 hours and has not signed
-- out; the plan caps how many are active at once.

CREATE TABLE device_sessions (
  user_id        TEXT NOT NULL REFERENCES users (id),
  device_id      TEXT NOT NULL,                   -- chosen by the client (X-Device-Id)
  platform       TEXT NOT NULL CHECK (platform IN ('chrome', 'electron', 'web')),
  auth_session_id TEXT,                           -- the token's sid/jti, so sign-out frees it
  first_seen_at  TEXT NOT NULL,
  last_seen_at   TEXT NOT NULL,
  last_seen_ms   INTEGER NOT NULL,
  ended_at       TEXT,
  PRIMARY KEY (user_id, device_id)
);

CREATE INDEX device_sessions_active ON device_sessions (user_id, ended_at, last_seen_ms);
