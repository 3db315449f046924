-- 0006: Stripe billing. A user's Stripe customer, their subscriptions as the newest applied
-- event left them, and the history of every change. Webhook deliveries themselves are in
-- webhook_events (0002); failed ones are retried by the scheduled event.

CREATE TABLE billing_customers (
  user_id        TEXT PRIMARY KEY REFERENCES users (id),
  customer_id    TEXT NOT NULL UNIQUE,            -- Stripe's cus_...
  created_at     TEXT NOT NULL
);

CREATE TABLE subscriptions (
  id             TEXT PRIMARY KEY,                -- Stripe's sub_...
  user_id        TEXT NOT NULL REFERENCES users (id),
  customer_id    TEXT NOT NULL,
  item_id        TEXT,                            -- the subscription item holding the price
  price_id       TEXT NOT NULL,
  plan           TEXT NOT NULL,                   -- the catalog plan of that price
  status         TEXT NOT NULL,                   -- Stripe's status: active, past_due, canceled, ...
  cancel_at_period_end INTEGER NOT NULL DEFAULT 0,
  current_period_end TEXT,
  event_created  INTEGER NOT NULL DEFAULT 0,      -- `created` of the newest event applied
  created_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL
);

CREATE INDEX subscriptions_by_user ON subscriptions (user_id, updated_at);

CREATE TABLE subscription_history (
  id             TEXT PRIMARY KEY,                -- 'sh_' + random
  user_id        TEXT NOT NULL REFERENCES users (id),
  subscription_id TEXT,
  source         TEXT NOT NULL,                   -- an event id (evt_...) or 'api'
  kind           TEXT NOT NULL,                   -- the event type or API action
  status         TEXT,
  from_plan      TEXT,
  to_plan        TEXT,
  created_at     TEXT NOT NULL,
  UNIQUE (source, kind, subscription_id)
);

CREATE INDEX subscription_history_by_user ON subscription_history (user_id, created_at);
