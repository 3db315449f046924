-- 0014: organisations and their sites. An org is a client of the operator (an agency's
-- customer): its members sign in with Clerk, whose organisation id maps to exactly one org;
-- its sites (chat widgets, voice endpoints) are identified by public site keys bound to the
-- origins the org allows. Every org-scoped row leads with org_id, and every portal query reads
-- it from the caller's token (or, for staff only, from ?orgId=), never from a body.

CREATE TABLE orgs (
  id            TEXT PRIMARY KEY,                   -- 'org_' + random (Tollgate's)
  clerk_org_id  TEXT UNIQUE,                        -- Clerk's organisation id; NULL: reachable by staff only
  name          TEXT NOT NULL,
  slug          TEXT NOT NULL UNIQUE,               -- [a-z0-9]{2,32}: the {client} in its site keys
  plan          TEXT NOT NULL,                      -- a plan id of the catalog (its monthly limits)
  status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'churned')),
  config        TEXT NOT NULL DEFAULT '{}',         -- JSON, validated: display name, greeting, theme, prompt, model, ...
  created_at    TEXT NOT NULL,                      -- RFC 3339 UTC
  updated_at    TEXT NOT NULL
);

-- An org's sites ("engines"): a chat widget or a voice endpoint. The site key is public (it
-- sits in web pages), so it is stored as it is and shown to the org's members; what protects
-- it is the origin binding: a browser request from an origin not in allowed_origins is refused.
CREATE TABLE sites (
  id            TEXT PRIMARY KEY,                   -- 'site_' + random
  org_id        TEXT NOT NULL REFERENCES orgs (id),
  name          TEXT NOT NULL,
  type          TEXT NOT NULL CHECK (type IN ('chatbot', 'voice')),
  status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
  site_key      TEXT NOT NULL UNIQUE,               -- sk_{slug}_{env}_{random}; replaced when rotated
  env           TEXT NOT NULL CHECK (env IN ('live', 'test', 'dev')),
  allow_server_calls INTEGER NOT NULL DEFAULT 0 CHECK (allow_server_calls IN (0, 1)), -- requests without Origin
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL,
  key_rotated_at TEXT
);

CREATE INDEX sites_by_org ON sites (org_id, created_at);

-- The origins a site's key may be used from ('https://host[:port]', as a browser sends
-- Origin). A row per origin, indexed by origin, because a CORS preflight carries no site key:
-- it is answered for an origin some active site allows, and the request that follows is then
-- held to its own site's list.
CREATE TABLE site_origins (
  site_id       TEXT NOT NULL REFERENCES sites (id),
  origin        TEXT NOT NULL,
  PRIMARY KEY (site_id, origin)
);

CREATE INDEX site_origins_by_origin ON site_origins (origin);
