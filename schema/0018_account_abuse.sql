-- Windows that bound how often a public account action may happen: sign-ups per client IP
-- ('signup-ip:<address>'), reset requests per client IP ('reset-ip:<address>') and per email
-- ('reset-email:<address>'). A window opens at its first use and lasts its action's period.
-- The CHECK is what makes a claim exact: a claim past the window's limit fails its
-- statement, and with it the whole batch it is part of, so nothing else in the batch is
-- stored either.
CREATE TABLE account_throttle_windows (
  key             TEXT PRIMARY KEY,
  window_start_ms INTEGER NOT NULL,
  count           INTEGER NOT NULL,
  max_count       INTEGER NOT NULL,
  CHECK (count <= max_count)
);

-- A new email asked for with PUT /api/auth/profile: it takes the place of `email` (sign-in,
-- resets) only once its mailed verification link is used.
ALTER TABLE account_credentials ADD COLUMN pending_email TEXT;
