-- notion_sync schema: registry, secrets, run history and the sync tables.
-- Everything is schema-qualified; nothing depends on the caller's search_path.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'notion_sync_admin') THEN
    CREATE ROLE notion_sync_admin NOLOGIN;
  END IF;
END
$$;

-- Integration tokens per user label. Readable by superusers only (no grants, RLS with no policy).
CREATE TABLE notion_sync.tokens (
  user_id    text PRIMARY KEY,
  token      text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON notion_sync.tokens FROM PUBLIC;
ALTER TABLE notion_sync.tokens ENABLE ROW LEVEL SECURITY;

-- Webhook verification tokens (the HMAC keys), one subscription per user. Like tokens: no grants,
-- RLS without a policy, so only superusers (and the SECURITY DEFINER functions) read it.
CREATE TABLE notion_sync.webhook_secrets (
  user_id         text PRIMARY KEY,
  secret          text NOT NULL,
  subscription_id text,
  created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
  -- Set by the first event the secret verifies; a verified secret is replaced only by set_webhook_secret.
  verified_at     timestamptz,
  last_event_at   timestamptz
);
REVOKE ALL ON notion_sync.webhook_secrets FROM PUBLIC;
ALTER TABLE notion_sync.webhook_secrets ENABLE ROW LEVEL SECURITY;

-- Accepted webhook events, durable until the worker applied them (deduplicated on Notion's id).
CREATE TABLE notion_sync.webhook_events (
  id              text PRIMARY KEY,
  user_id         text NOT NULL,
  type            text NOT NULL,
  entity_id       text,
  entity_type     text,
  parent_id       text,
  event_time      timestamptz,
  attempt_number  int,
  body            jsonb NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'ignored', 'failed')),
  attempts        int NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  duplicates      int NOT NULL DEFAULT 0,
  received_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  processed_at    timestamptz,
  result          text,
  last_error      text
);
CREATE INDEX webhook_events_pending_idx ON notion_sync.webhook_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_events_received_idx ON notion_sync.webhook_events (received_at);
REVOKE ALL ON notion_sync.webhook_events FROM PUBLIC;

-- Which application user a database role reads as, on plain Postgres (see current_user_id()).
CREATE TABLE notion_sync.role_users (
  role_name name PRIMARY KEY,
  user_id   text NOT NULL
);
REVOKE ALL ON notion_sync.role_users FROM PUBLIC;

-- Registered databases: what to sync, where, when, and the incremental watermark.
CREATE TABLE notion_sync.databases (
  user_id           text NOT NULL,
  database_id       text NOT NULL,
  database_name     text NOT NULL,
  target_table      text NOT NULL,
  schedule          text NOT NULL DEFAULT '*/15 * * * *',
  timezone          text NOT NULL DEFAULT 'UTC',
  -- Newest last_edited_time fully synced; moves only in the transaction that writes the rows.
  watermark         timestamptz,
  last_full_sync_at timestamptz,
  -- Set by register_database and by the worker each time it starts a scheduled run.
  next_run_at       timestamptz,
  -- A table of the user's own (target_table is then its qualified name): column -> Notion property
  -- name, property id or @special; written with the privileges of target_role, who registered it.
  target_columns    jsonb,
  target_role       name,
  -- Pages of a mapped table are found by search_notion_content.
  searchable        boolean NOT NULL DEFAULT false,
  created_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
  -- Data source ids of the database (0.2.0), from each run's database retrieve: webhooks whose
  -- page parent or entity names only a data source are routed through it.
  data_sources      text[],
  -- A page tree (0.2.0, register_pages): database_id is its root page (the nil id: every page
  -- outside databases the token can see) and this the depth of sub-pages mirrored; NULL for a
  -- database.
  page_tree_depth   int,
  PRIMARY KEY (user_id, database_id)
);
CREATE INDEX databases_data_sources_idx ON notion_sync.databases USING gin (data_sources);
REVOKE ALL ON notion_sync.databases FROM PUBLIC;

CREATE TABLE notion_sync.sync_runs (
  run_id        bigserial PRIMARY KEY,
  user_id       text NOT NULL,
  database_id   text NOT NULL,
  database_name text,
  target_table  text,
  trigger       text NOT NULL DEFAULT 'manual',
  mode          text NOT NULL,
  status        text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'skipped')),
  started_at    timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  finished_at   timestamptz,
  total         int NOT NULL DEFAULT 0,
  created       int NOT NULL DEFAULT 0,
  updated       int NOT NULL DEFAULT 0,
  skipped       int NOT NULL DEFAULT 0,
  deleted       int NOT NULL DEFAULT 0,
  errors        int NOT NULL DEFAULT 0,
  http_requests int NOT NULL DEFAULT 0,
  retries       int NOT NULL DEFAULT 0,
  duration_ms   bigint,
  error         text
);
CREATE INDEX sync_runs_db_idx ON notion_sync.sync_runs (user_id, database_id, run_id DESC);
CREATE INDEX sync_runs_started_idx ON notion_sync.sync_runs (started_at);
REVOKE ALL ON notion_sync.sync_runs FROM PUBLIC;

CREATE TABLE notion_sync.sync_errors (
  id             bigserial PRIMARY KEY,
  run_id         bigint REFERENCES notion_sync.sync_runs (run_id) ON DELETE CASCADE,
  user_id        text NOT NULL,
  database_id    text NOT NULL,
  notion_page_id text,
  error          text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX sync_errors_run_idx ON notion_sync.sync_errors (run_id);
CREATE INDEX sync_errors_created_idx ON notion_sync.sync_errors (created_at);
REVOKE ALL ON notion_sync.sync_errors FROM PUBLIC;

-- The application user id of the current role: a mapping in notion_sync.role_users first (plain
-- Postgres; only the owner can write it), then Supabase's auth.uid() for its API roles.
CREATE FUNCTION notion_sync.user_id_for_role(p_role name)
RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v text;
BEGIN
  SELECT user_id INTO v FROM notion_sync.role_users WHERE role_name = p_role;
  IF v IS NOT NULL THEN
    RETURN v;
  END IF;
  -- Supabase: PostgREST switches to these roles after verifying the JWT; auth.uid() reads it.
  IF p_role IN ('authenticated', 'service_role')
     AND pg_catalog.to_regprocedure('auth.uid()') IS NOT NULL THEN
    EXECUTE 'SELECT auth.uid()::text' INTO v;
    RETURN v;
  END IF;
  RETURN NULL;
END
$$;

CREATE FUNCTION notion_sync.current_user_id()
RETURNS text LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT notion_sync.user_id_for_role(current_user) $$;

-- The sync tables share one shape; each names its title and text columns as the seed apps did.
CREATE TABLE notion_sync.notion_characters_sync (
  id                      uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
  notion_page_id          text NOT NULL,
  notion_database_id      text NOT NULL,
  user_id                 text NOT NULL,
  name                    text,
  description             text,
  properties              jsonb NOT NULL DEFAULT '{}',
  content_hash            text,
  url                     text,
  in_trash                boolean NOT NULL DEFAULT false,
  notion_created_time     timestamptz,
  notion_last_edited_time timestamptz,
  body                    text,
  last_synced_at          timestamptz,
  created_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
  search_vector tsvector GENERATED ALWAYS AS (
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(name, '')), 'A') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(description, '')), 'B') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(body, '')), 'C')) STORED,
  UNIQUE (user_id, notion_page_id)
);

CREATE TABLE notion_sync.notion_worlds_sync (LIKE notion_sync.notion_characters_sync INCLUDING ALL);

CREATE TABLE notion_sync.notion_stories_sync (
  id                      uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
  notion_page_id          text NOT NULL,
  notion_database_id      text NOT NULL,
  user_id                 text NOT NULL,
  title                   text,
  content                 text,
  properties              jsonb NOT NULL DEFAULT '{}',
  content_hash            text,
  url                     text,
  in_trash                boolean NOT NULL DEFAULT false,
  notion_created_time     timestamptz,
  notion_last_edited_time timestamptz,
  body                    text,
  last_synced_at          timestamptz,
  created_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
  -- The seed's column (0.2.0): the Description property, as in the other tables. Placed where
  -- ALTER TABLE ADD COLUMN puts it, so a fresh install and an upgraded one have the same shape.
  description             text,
  search_vector tsvector GENERATED ALWAYS AS (
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(title, '')), 'A') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(description, '')), 'B') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(content, '')), 'B') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(body, '')), 'C')) STORED,
  UNIQUE (user_id, notion_page_id)
);

CREATE TABLE notion_sync.notion_chat_sessions_sync (
  id                      uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
  notion_page_id          text NOT NULL,
  notion_database_id      text NOT NULL,
  user_id                 text NOT NULL,
  title                   text,
  transcript              text,
  message_count           int,
  properties              jsonb NOT NULL DEFAULT '{}',
  content_hash            text,
  url                     text,
  in_trash                boolean NOT NULL DEFAULT false,
  notion_created_time     timestamptz,
  notion_last_edited_time timestamptz,
  body                    text,
  last_synced_at          timestamptz,
  created_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
  search_vector tsvector GENERATED ALWAYS AS (
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(title, '')), 'A') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(transcript, '')), 'B') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(body, '')), 'C')) STORED,
  UNIQUE (user_id, notion_page_id)
);

CREATE TABLE notion_sync.notion_pages_sync (
  id                      uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
  notion_page_id          text NOT NULL,
  notion_database_id      text NOT NULL,
  database_name           text,
  user_id                 text NOT NULL,
  title                   text,
  description             text,
  properties              jsonb NOT NULL DEFAULT '{}',
  content_hash            text,
  url                     text,
  in_trash                boolean NOT NULL DEFAULT false,
  notion_created_time     timestamptz,
  notion_last_edited_time timestamptz,
  body                    text,
  last_synced_at          timestamptz,
  created_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
  search_vector tsvector GENERATED ALWAYS AS (
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(title, '')), 'A') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(description, '')), 'B') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(body, '')), 'C')) STORED,
  -- Pages of a page tree (0.2.0): the parent page, and the titles from the tree's top page down to
  -- this one. NULL for pages of a database.
  notion_parent_id        text,
  path                    text[],
  UNIQUE (user_id, notion_page_id)
);

DO $$
DECLARE
  t text;
  namecol text;
  trgm text := (SELECT e.extnamespace::regnamespace::text FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_trgm');
BEGIN
  FOREACH t IN ARRAY ARRAY['notion_characters_sync', 'notion_worlds_sync', 'notion_stories_sync',
                           'notion_chat_sessions_sync', 'notion_pages_sync'] LOOP
    namecol := CASE WHEN t IN ('notion_characters_sync', 'notion_worlds_sync') THEN 'name' ELSE 'title' END;
    EXECUTE pg_catalog.format('CREATE INDEX %I ON notion_sync.%I (user_id, notion_database_id)', t || '_db_idx', t);
    -- The user and the words in one GIN index (btree_gin): a search reads only its user's matches,
    -- where a text-only index ANDed with a bitmap of every row of the user (1M pages of 10 users:
    -- p50 40 -> 9 ms).
    EXECUTE pg_catalog.format('CREATE INDEX %I ON notion_sync.%I USING gin (user_id, search_vector)', t || '_search_idx', t);
    EXECUTE pg_catalog.format('CREATE INDEX %I ON notion_sync.%I (user_id, updated_at DESC)', t || '_updated_idx', t);
    EXECUTE pg_catalog.format('CREATE INDEX %I ON notion_sync.%I USING gin (pg_catalog.lower(%I) %s.gin_trgm_ops)',
                              t || '_name_trgm_idx', t, namecol, trgm);
    EXECUTE pg_catalog.format('ALTER TABLE notion_sync.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE pg_catalog.format(
      'CREATE POLICY own_rows ON notion_sync.%I FOR SELECT USING (user_id = notion_sync.current_user_id())', t);
    EXECUTE pg_catalog.format('REVOKE ALL ON notion_sync.%I FROM PUBLIC', t);
    EXECUTE pg_catalog.format('GRANT SELECT ON notion_sync.%I TO PUBLIC', t);
  END LOOP;
END
$$;
-- get_notion_character's exact and prefix tiers, and its listing, walk this in order (C collation:
-- a LIKE prefix can use it whatever the database's collation).
CREATE INDEX notion_characters_sync_name_idx
  ON notion_sync.notion_characters_sync (user_id, (pg_catalog.lower(name) COLLATE pg_catalog."C"));

-- What notion_sync knows of each page synced into a table of the user's own (a column map): hash
-- for change detection, trash flag, edit time (never back in time), what status() counts, and the
-- search text of searchable registrations. The application's table itself needs no extra column.
CREATE TABLE notion_sync.mapped_pages (
  user_id                 text NOT NULL,
  notion_page_id          text NOT NULL,
  notion_database_id      text NOT NULL,
  target_table            text NOT NULL,
  title                   text,
  url                     text,
  content_hash            text,
  has_content             boolean NOT NULL DEFAULT false,
  has_email               boolean NOT NULL DEFAULT false,
  -- Only for searchable registrations: the text of the mapped properties and the body.
  doc                     text,
  in_trash                boolean NOT NULL DEFAULT false,
  notion_last_edited_time timestamptz,
  last_synced_at          timestamptz,
  updated_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
  search_vector tsvector GENERATED ALWAYS AS (CASE WHEN doc IS NOT NULL THEN
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(title, '')), 'A') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, doc), 'B') END) STORED,
  PRIMARY KEY (user_id, notion_page_id)
);
CREATE INDEX mapped_pages_db_idx ON notion_sync.mapped_pages (user_id, notion_database_id);
CREATE INDEX mapped_pages_updated_idx ON notion_sync.mapped_pages (user_id, updated_at DESC);
CREATE INDEX mapped_pages_search_idx ON notion_sync.mapped_pages USING gin (user_id, search_vector);
ALTER TABLE notion_sync.mapped_pages ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON notion_sync.mapped_pages FOR SELECT USING (user_id = notion_sync.current_user_id());
REVOKE ALL ON notion_sync.mapped_pages FROM PUBLIC;
GRANT SELECT ON notion_sync.mapped_pages TO PUBLIC;

-- What every sync returns (design.md).
CREATE TYPE notion_sync.sync_result AS (
  run_id        bigint,
  database_id   text,
  database_name text,
  mode          text,
  status        text,
  total         int,
  created       int,
  updated       int,
  skipped       int,
  deleted       int,
  errors        jsonb,
  duration_ms   bigint
);

-- Typed views (0.2.0, src/typed_view.rs): each view over a database's sync table and its columns
-- by property id, so a schema change in Notion re-creates it with renamed and removed columns.
CREATE TABLE notion_sync.typed_views (
  view_schema name NOT NULL,
  view_name   name NOT NULL,
  user_id     text NOT NULL,
  database_id text NOT NULL,
  columns     jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (view_schema, view_name)
);
CREATE INDEX typed_views_db_idx ON notion_sync.typed_views (user_id, database_id);
REVOKE ALL ON notion_sync.typed_views FROM PUBLIC;

-- A Notion timestamp or date as timestamptz; NULL for what is not one (typed views never fail on a
-- bad value). Date-only values are read in the session's TimeZone.
CREATE FUNCTION notion_sync._ts(p text) RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN p OPERATOR(pg_catalog.~) '^\d{4}-\d{2}-\d{2}($|T)' THEN p::pg_catalog.timestamptz END $$;

-- pg_dump keeps what users store here (0.2.0): extension member tables are otherwise left out of a
-- dump, and a restore gave an empty extension. A dump therefore holds the Notion tokens and webhook
-- secrets: treat it as a secret.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['tokens', 'webhook_secrets', 'webhook_events', 'role_users', 'databases',
                           'sync_runs', 'sync_errors', 'mapped_pages', 'notion_characters_sync',
                           'notion_worlds_sync', 'notion_stories_sync', 'notion_chat_sessions_sync',
                           'notion_pages_sync', 'typed_views', 'sync_runs_run_id_seq', 'sync_errors_id_seq'] LOOP
    PERFORM pg_catalog.pg_extension_config_dump(pg_catalog.format('notion_sync.%I', t)::regclass, '');
  END LOOP;
END
$$;
