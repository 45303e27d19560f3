-- notion_sync 0.1.0 -> 0.2.0. Hand-written: ALTER what holds data, CREATE OR REPLACE functions.
-- Every later schema change comes with its own sql/notion_sync--A--B.sql (README, "Contributing").
\echo Use "ALTER EXTENSION notion_sync UPDATE TO '0.2.0'" to load this file. \quit

-- The seed's stories.description, ranked by search with title and content.
ALTER TABLE notion_sync.notion_stories_sync ADD COLUMN description text;
-- Filled as the engine fills it (storage/mod.rs TABLES: the first of Description, Summary, by
-- name, with text), so rows that will not change again in Notion have it too.
UPDATE notion_sync.notion_stories_sync t SET description = d.v
  FROM (SELECT s.id, (SELECT p.value->>'value' FROM pg_catalog.jsonb_each(s.properties) p
                       WHERE pg_catalog.lower(p.key) IN ('description', 'summary')
                         AND pg_catalog.jsonb_typeof(p.value->'value') = 'string'
                         AND (p.value->>'value') ~ '\S'
                       ORDER BY p.key COLLATE "C" LIMIT 1) AS v
          FROM notion_sync.notion_stories_sync s) d
 WHERE d.id = t.id AND d.v IS NOT NULL;
ALTER TABLE notion_sync.notion_stories_sync DROP COLUMN search_vector;
ALTER TABLE notion_sync.notion_stories_sync ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(title, '')), 'A') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(description, '')), 'B') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(content, '')), 'B') ||
    pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english'::regconfig, coalesce(body, '')), 'C')) STORED;
CREATE INDEX notion_stories_sync_search_idx ON notion_sync.notion_stories_sync USING gin (user_id, search_vector);

-- Search reads only its user's matches: the user and the words in one GIN index (btree_gin, which
-- 0.2.0 requires: CREATE EXTENSION btree_gin before this update; README "Backups and upgrades").
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['notion_characters_sync', 'notion_worlds_sync', 'notion_chat_sessions_sync',
                           'notion_pages_sync', 'mapped_pages'] LOOP
    EXECUTE pg_catalog.format('DROP INDEX notion_sync.%I', t || '_search_idx');
    EXECUTE pg_catalog.format('CREATE INDEX %I ON notion_sync.%I USING gin (user_id, search_vector)', t || '_search_idx', t);
  END LOOP;
END
$$;

-- Data source ids per database, for webhooks that name only a data source.
ALTER TABLE notion_sync.databases ADD COLUMN data_sources text[];
ALTER TABLE notion_sync.databases ADD COLUMN page_tree_depth int;
ALTER TABLE notion_sync.notion_pages_sync ADD COLUMN notion_parent_id text, ADD COLUMN path text[];
CREATE INDEX databases_data_sources_idx ON notion_sync.databases USING gin (data_sources);

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

-- pg_dump keeps what users store (a dump holds tokens: treat it as a secret).
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

-- Search ranks and quotes the stories' description too.
CREATE OR REPLACE FUNCTION notion_sync.search_notion_content(p_user_id text, p_search_query text, p_limit int DEFAULT 20)
RETURNS TABLE (source_table text, notion_page_id text, title text, content text, relevance_score real, url text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET parallel_setup_cost = 10000
AS $$
DECLARE
  branches text;
BEGIN
  SELECT string_agg(format($b$
      SELECT %s AS source_table, t.notion_page_id, t.%I AS title, %s AS d1, %s AS d2,
             ts_rank(t.search_vector, $2) AS score, t.url
        FROM notion_sync.%I t
       WHERE t.user_id = $1 AND NOT t.in_trash AND t.search_vector @@ $2$b$,
      coalesce(v.src, quote_literal(v.tbl)), v.namecol, v.d1, v.d2, v.tbl), ' UNION ALL ')
    INTO branches
    FROM (VALUES
      ('notion_characters_sync', NULL, 'name', 't.description', 't.body'),
      ('notion_worlds_sync', NULL, 'name', 't.description', 't.body'),
      ('notion_stories_sync', NULL, 'title', $d$concat_ws(E'\n', t.description, t.content)$d$, 't.body'),
      ('notion_chat_sessions_sync', NULL, 'title', 't.transcript', 't.body'),
      ('notion_pages_sync', NULL, 'title', 't.description', 't.body'),
      -- Tables of the user's own registered as searchable (their vector is NULL otherwise).
      ('mapped_pages', 't.target_table', 'title', 't.doc', 'NULL')) v(tbl, src, namecol, d1, d2);
  RETURN QUERY EXECUTE format($s$
    WITH hits AS (SELECT * FROM (%s) all_hits ORDER BY score DESC, title LIMIT $3)
    -- Snippets, and the text they are cut from, only for the rows returned.
    SELECT h.source_table, h.notion_page_id, h.title,
           ts_headline('pg_catalog.english'::regconfig, coalesce(nullif(concat_ws(E'\n', h.d1, h.d2), ''), h.title),
                       $2, 'MaxWords=30, MinWords=10, StartSel=**, StopSel=**'),
           h.score::real, h.url
      FROM hits h
     ORDER BY h.score DESC, h.title$s$, branches)
    USING p_user_id, websearch_to_tsquery('pg_catalog.english'::regconfig, p_search_query),
          greatest(coalesce(p_limit, 20), 0);
END
$$;

-- Hosted file URLs after they expired (src/files.rs).
CREATE FUNCTION notion_sync._file_url(p_user_id text, p_page_id text, p_property text, p_index int)
RETURNS text STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_file_url_wrapper';
-- A page tree (0.2.0): a page and its sub-pages (child_page blocks, p_max_depth levels down) into
-- notion_pages_sync, with their parent and path of titles, bodies included. No root: every page
-- outside databases the user's token can see (the top-level ones, and theirs). Synced like a
-- database (sync_notion_database with the root id, the schedule, sync_status); a full run walks the
-- whole tree and marks what it no longer finds in trash, an incremental one reads the pages Notion's
-- search gives as edited since the watermark.
CREATE FUNCTION notion_sync.register_pages(
  p_user_id text, p_root_page_id text DEFAULT NULL, p_schedule text DEFAULT '*/15 * * * *',
  p_timezone text DEFAULT 'UTC', p_max_depth int DEFAULT 5)
RETURNS notion_sync.databases LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id text := coalesce(notion_sync.normalize_notion_id(p_root_page_id), '00000000-0000-0000-0000-000000000000');
  v_schedule text := btrim(coalesce(p_schedule, ''));
  v_row notion_sync.databases;
BEGIN
  PERFORM notion_sync._required(p_user_id, 'p_user_id');
  IF p_max_depth IS NULL OR p_max_depth < 0 OR p_max_depth > 50 THEN
    RAISE EXCEPTION 'p_max_depth must be between 0 and 50, got %', coalesce(p_max_depth::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  IF lower(v_schedule) = 'manual' THEN
    v_schedule := 'manual';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_timezone) THEN
    RAISE EXCEPTION 'unknown time zone %: use an IANA name such as America/New_York', quote_literal(p_timezone)
      USING ERRCODE = '22023';
  END IF;
  INSERT INTO notion_sync.databases AS d (user_id, database_id, database_name, target_table, schedule, timezone,
                                          next_run_at, page_tree_depth)
  VALUES (p_user_id, v_id, CASE WHEN p_root_page_id IS NULL THEN 'Workspace pages' ELSE 'Pages' END,
          'notion_pages_sync', v_schedule, p_timezone, notion_sync.next_run(v_schedule, p_timezone), p_max_depth)
  ON CONFLICT (user_id, database_id) DO UPDATE
    SET schedule = EXCLUDED.schedule, timezone = EXCLUDED.timezone, next_run_at = EXCLUDED.next_run_at,
        page_tree_depth = EXCLUDED.page_tree_depth, target_table = EXCLUDED.target_table,
        target_columns = NULL, target_role = NULL,
        -- A deeper tree must be walked again.
        watermark = CASE WHEN d.page_tree_depth = EXCLUDED.page_tree_depth THEN d.watermark END,
        updated_at = now()
  RETURNING * INTO v_row;
  RETURN v_row;
END
$$;

REVOKE ALL ON FUNCTION notion_sync.register_pages(text, text, text, text, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.register_pages(text, text, text, text, int) TO notion_sync_admin;

CREATE FUNCTION notion_sync.file_url(p_user_id text, p_page_id text, p_property text, p_index int DEFAULT 0)
RETURNS text LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT notion_sync._file_url(p_user_id, p_page_id, p_property, p_index) $$;
REVOKE ALL ON FUNCTION notion_sync._file_url(text, text, text, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.file_url(text, text, text, int) TO PUBLIC;

-- Discovery (src/discovery.rs).
CREATE FUNCTION notion_sync._discover_databases(p_user_id text)
RETURNS jsonb STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_discover_databases_wrapper';
-- Every database / data source the user's token can see (0.2.0): POST /v1/search, all pages of it.
-- Trashed ones are listed (flagged), never registered by this. Register all the others with:
--   SELECT notion_sync.register_database(p.user_id, d.database_id, d.title) FROM ... (README)
CREATE FUNCTION notion_sync.discover_databases(p_user_id text)
RETURNS TABLE (database_id text, data_source_id text, title text, url text, parent jsonb,
               property_count int, in_trash boolean, registered boolean)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.database_id, r.data_source_id, r.title, r.url, r.parent, r.property_count, r.in_trash,
         EXISTS (SELECT 1 FROM notion_sync.databases d
                  WHERE d.user_id = p_user_id AND d.database_id = r.database_id)
    FROM jsonb_to_recordset(notion_sync._discover_databases(p_user_id))
         AS r(database_id text, data_source_id text, title text, url text, parent jsonb,
              property_count int, in_trash boolean)
   ORDER BY r.in_trash, r.title, r.database_id, r.data_source_id
$$;
REVOKE ALL ON FUNCTION notion_sync._discover_databases(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION notion_sync.discover_databases(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.discover_databases(text) TO notion_sync_admin;

-- Typed views (src/typed_view.rs).
CREATE FUNCTION notion_sync._create_typed_view(p_user_id text, p_database_id text, p_view text)
RETURNS text STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_create_typed_view_wrapper';
-- One column per Notion property over a database's sync table (0.2.0, README "Typed views").
CREATE FUNCTION notion_sync.create_typed_view(p_user_id text, p_database_id text, p_view text)
RETURNS text LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT notion_sync._create_typed_view(p_user_id, p_database_id, p_view) $$;
REVOKE ALL ON FUNCTION notion_sync._create_typed_view(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION notion_sync.create_typed_view(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.create_typed_view(text, text, text) TO notion_sync_admin;

-- Progress of running syncs (src/progress.rs).
CREATE FUNCTION notion_sync._sync_progress()
RETURNS TABLE (run_id bigint, pid int, user_id text, database_id text, phase text, pages_read bigint,
               written bigint, skipped bigint, failed bigint, requests bigint, requests_per_s float8,
               elapsed_s float8, expected_pages bigint, remaining_s float8)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_sync_progress_wrapper';
-- Syncs running now, from shared memory (0.2.0, src/progress.rs): a SQL call's transaction shows
-- nothing until it ends, so this is how another session follows a long first sync.
CREATE VIEW notion_sync.sync_progress AS
  SELECT * FROM notion_sync._sync_progress();
REVOKE ALL ON FUNCTION notion_sync._sync_progress() FROM PUBLIC;
REVOKE ALL ON notion_sync.sync_progress FROM PUBLIC;
GRANT SELECT ON notion_sync.sync_progress TO notion_sync_admin;

-- The lookup's substring tier runs only when no name equals or starts with the query, its typo tier
-- only when none equals, starts with or contains it; its statements are planned once per session.
DO $do$
DECLARE
  trgm text := (SELECT e.extnamespace::regnamespace::text FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_trgm');
BEGIN
  EXECUTE pg_catalog.replace($f$
-- Tiers, best first: exact (1.0), prefix (0.9), substring (0.8), then typo-tolerant (0.7 x trigram
-- similarity); ties by lowercased name. A tier runs only while fewer than p_limit rows were found,
-- since no row of a later tier can outrank one of an earlier tier. Two rules leave fill-ins out:
-- the substring tier runs only when no name equals or starts with the query, the typo tier only when
-- none equals, starts with or contains it (with p_limit NULL every tier runs). So an exact match
-- still comes first, prefix matches before substring ones, and a lookup that has its answer in the
-- btree never pays for the trigram index (issue 21, 100k characters: p50 1.7 -> 0.5 ms,
-- benches/lookup_mix.py). Static statements, their plans cached for the session: the prefix tier is
-- a btree range (q < name < q with its last character incremented, C collation) rather than a LIKE,
-- which only a plan with the pattern as a constant can use; the substring and typo tiers read the
-- trigram index alone, the user filtered after it (a subquery), since a generic plan would AND it
-- with a bitmap of every row of the user and a name-ordered btree scan reads every name of the user
-- when few match. p_limit NULL returns every match.
CREATE OR REPLACE FUNCTION notion_sync.get_notion_character(p_user_id text, p_character_name text, p_limit int DEFAULT 20)
RETURNS TABLE (notion_page_id text, name text, description text, properties jsonb, url text, match_score real)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  q text := lower(p_character_name);
  -- LIKE wildcards in the name are matched literally.
  esc text := replace(replace(replace(q, '\', '\\'), '%', '\%'), '_', '\_');
  last_ int := ascii(right(q, 1));
  -- The first string after every one that starts with q.
  hi text;
  got bigint;
  left_ bigint := p_limit;
BEGIN
  IF p_limit < 0 THEN
    RAISE EXCEPTION 'p_limit must be 0 or more, got %', p_limit USING ERRCODE = '2201W';
  END IF;
  IF p_limit = 0 THEN
    RETURN;
  END IF;
  IF p_character_name IS NULL THEN
    RETURN QUERY SELECT c.notion_page_id, c.name, c.description, c.properties, c.url, 1.0::real
      FROM notion_sync.notion_characters_sync c
     WHERE c.user_id = p_user_id AND NOT c.in_trash
     ORDER BY lower(c.name) COLLATE pg_catalog."C", c.name LIMIT p_limit;
    RETURN;
  END IF;
  RETURN QUERY SELECT c.notion_page_id, c.name, c.description, c.properties, c.url, 1.0::real
    FROM notion_sync.notion_characters_sync c
   WHERE c.user_id = p_user_id AND NOT c.in_trash AND lower(c.name) COLLATE pg_catalog."C" = q
   ORDER BY lower(c.name) COLLATE pg_catalog."C", c.name LIMIT left_;
  GET DIAGNOSTICS got = ROW_COUNT;
  left_ := left_ - got;
  IF left_ <= 0 THEN RETURN; END IF;
  IF q <> '' AND last_ < 1114111 AND getdatabaseencoding() = 'UTF8' THEN
    hi := left(q, -1) || chr(CASE WHEN last_ = 55295 THEN 57344 ELSE last_ + 1 END);
    RETURN QUERY SELECT c.notion_page_id, c.name, c.description, c.properties, c.url, 0.9::real
      FROM notion_sync.notion_characters_sync c
     WHERE c.user_id = p_user_id AND NOT c.in_trash
       AND lower(c.name) COLLATE pg_catalog."C" > q AND lower(c.name) COLLATE pg_catalog."C" < hi
     ORDER BY lower(c.name) COLLATE pg_catalog."C", c.name LIMIT left_;
  ELSE
    -- '' or a last character without successor (or not UTF8): LIKE planned with the pattern.
    RETURN QUERY EXECUTE format(
      'SELECT c.notion_page_id, c.name, c.description, c.properties, c.url, 0.9::real
         FROM notion_sync.notion_characters_sync c
        WHERE c.user_id = $1 AND NOT c.in_trash AND lower(c.name) COLLATE pg_catalog."C" LIKE %L AND lower(c.name) <> $2
        ORDER BY lower(c.name) COLLATE pg_catalog."C", c.name LIMIT $3', esc || '%') USING p_user_id, q, left_;
  END IF;
  GET DIAGNOSTICS got = ROW_COUNT;
  left_ := left_ - got;
  IF left_ <= 0 THEN RETURN; END IF;
  -- The substring tier only when no name equals or starts with q (or every match was asked for).
  IF p_limit IS NOT NULL AND left_ < p_limit THEN RETURN; END IF;
  IF length(q) >= 3 THEN
    RETURN QUERY SELECT m.notion_page_id, m.name, m.description, m.properties, m.url, 0.8::real
      FROM (SELECT c.notion_page_id, c.name, c.description, c.properties, c.url, c.user_id, c.in_trash
              FROM notion_sync.notion_characters_sync c
             WHERE lower(c.name) LIKE '%' || esc || '%' OFFSET 0) m
     WHERE m.user_id = p_user_id AND NOT m.in_trash AND NOT starts_with(lower(m.name), q)
     ORDER BY lower(m.name) COLLATE pg_catalog."C", m.name LIMIT left_;
  ELSE
    -- Too short for a trigram: the trigram index would be read whole.
    RETURN QUERY SELECT c.notion_page_id, c.name, c.description, c.properties, c.url, 0.8::real
      FROM notion_sync.notion_characters_sync c
     WHERE c.user_id = p_user_id AND NOT c.in_trash
       AND strpos(lower(c.name), q) > 0 AND NOT starts_with(lower(c.name), q)
     ORDER BY lower(c.name) COLLATE pg_catalog."C", c.name LIMIT left_;
  END IF;
  GET DIAGNOSTICS got = ROW_COUNT;
  left_ := left_ - got;
  -- The typo tier only when nothing better matched (or every match was asked for): a name that
  -- matches as written wants those, not look-alikes.
  IF left_ <= 0 OR (p_limit IS NOT NULL AND left_ < p_limit) THEN RETURN; END IF;
  RETURN QUERY SELECT m.notion_page_id, m.name, m.description, m.properties, m.url,
                      (0.7 * @trgm@.similarity(lower(m.name), q))::real AS s
    FROM (SELECT c.notion_page_id, c.name, c.description, c.properties, c.url, c.user_id, c.in_trash
            FROM notion_sync.notion_characters_sync c
           WHERE lower(c.name) OPERATOR(@trgm@.%) q OFFSET 0) m
   WHERE m.user_id = p_user_id AND NOT m.in_trash AND strpos(lower(m.name), q) = 0
   ORDER BY s DESC, lower(m.name) COLLATE pg_catalog."C", m.name LIMIT left_;
END
$$ $f$, '@trgm@', trgm);
END
$do$;
-- Comments (0.2.0): the same statements as sql/comments.sql.
COMMENT ON FUNCTION notion_sync.set_notion_token(text, text) IS
  'Stores (or replaces) the Notion integration token of an application user.';
COMMENT ON FUNCTION notion_sync.set_webhook_secret(text, text) IS
  'Stores the verification token of a user''s Notion webhook subscription; the signature of every event is checked against it.';
COMMENT ON FUNCTION notion_sync.handle_webhook(text, text, text) IS
  'One webhook delivery: the raw body and its X-Notion-Signature header. Verifies, queues the event for the worker and returns at once.';
COMMENT ON FUNCTION notion_sync.webhook_health() IS
  'Webhook subscriptions (without secrets), queue depth, oldest pending age, counts of applied, ignored, failed and rejected events, last error.';
COMMENT ON FUNCTION notion_sync.next_run(text, text, timestamptz) IS
  'When a schedule (cron in an IANA time zone) runs next after p_after; NULL for manual.';
COMMENT ON FUNCTION notion_sync.register_database(text, text, text, text, text, regclass, jsonb, boolean) IS
  'Registers a Notion database of a user for syncing on a schedule, into its sync table or (p_target, p_columns) a table of the caller''s own.';
COMMENT ON FUNCTION notion_sync.register_pages(text, text, text, text, int) IS
  'Registers a page and its sub-pages (or, without a root, every page outside databases the token can see) for syncing into notion_pages_sync on a schedule.';
COMMENT ON FUNCTION notion_sync.unregister_database(text, text) IS
  'Stops syncing a database; rows already synced stay.';
COMMENT ON FUNCTION notion_sync.sync_notion_database(text, text, text, text, int) IS
  'Syncs one Notion database now (full or incremental, optionally the last p_hours_back hours) and returns the run''s counts and errors.';
COMMENT ON FUNCTION notion_sync.sync_all_notion_databases(text, text) IS
  'Syncs every registered database (of one user, or all) now; one result per database, a failing one does not stop the others.';
COMMENT ON FUNCTION notion_sync.file_url(text, text, text, int) IS
  'A working URL of a file Notion hosts: the stored one while it is valid, else read again from Notion.';
COMMENT ON FUNCTION notion_sync.get_notion_character(text, text, int) IS
  'Characters by name: exact, prefix, substring, then typo-tolerant matches, best first, at most p_limit (NULL for all). Substring matches only when no name equals or starts with the query, typo-tolerant ones only when none equals, starts with or contains it (p_limit NULL: all tiers).';
COMMENT ON FUNCTION notion_sync.search_notion_content(text, text, int) IS
  'Full-text search (websearch syntax) across the sync tables and searchable tables of the user''s own, titles ranked above bodies, with snippets.';
COMMENT ON FUNCTION notion_sync.status(text) IS
  'Per table totals, the most recently updated pages and the most recent runs, of one user or all.';
COMMENT ON FUNCTION notion_sync.user_id_for_role(name) IS
  'The application user a database role reads as: notion_sync.role_users, else Supabase''s auth.uid() for its API roles.';
COMMENT ON FUNCTION notion_sync.current_user_id() IS
  'The application user of the current role (row-level security of the synced tables uses it).';
COMMENT ON FUNCTION notion_sync.normalize_notion_id(text) IS
  'A Notion id with or without dashes, or a Notion URL, in the dashed lowercase form the API returns.';
COMMENT ON FUNCTION notion_sync.target_table_for(text) IS
  'The sync table a database name goes to: Characters, Worlds, Stories, Chat Sessions, else notion_pages_sync.';
COMMENT ON VIEW notion_sync.sync_status IS
  'Per registered database: schedule, next run, last run and its status, lag since the last successful run, last error, watermark, rows.';
COMMENT ON FUNCTION notion_sync.discover_databases(text) IS
  'Every database and data source the user''s token can see (Notion search, all pages of it), trashed ones flagged, and whether each is registered.';
COMMENT ON FUNCTION notion_sync.create_typed_view(text, text, text) IS
  'Creates a view with one typed column per Notion property over a database''s sync table; re-created when the schema changes.';
COMMENT ON VIEW notion_sync.sync_progress IS
  'The syncs running now (from shared memory, so SQL calls show too): pages done, written, skipped, failed, requests, rate, elapsed, estimated remaining.';

-- One scheduler per database of the cluster (src/launcher.rs).
CREATE FUNCTION notion_sync._schedulers()
RETURNS TABLE ("database" text, pid int, state text, since timestamptz, running_syncs int,
               requests_in_flight int, requests_waiting int)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_schedulers_wrapper';
-- One row per database the launcher serves (0.2.0, src/launcher.rs): its scheduler's pid and state,
-- from shared memory (no rows without shared_preload_libraries). Nothing secret: readable by all,
-- and so the function under it is left executable by PUBLIC.
CREATE VIEW notion_sync.schedulers AS
  SELECT * FROM notion_sync._schedulers();
GRANT SELECT ON notion_sync.schedulers TO PUBLIC;
COMMENT ON VIEW notion_sync.schedulers IS
  'One row per database of the cluster the launcher serves: its scheduler''s pid, state (starting, running, waiting, no extension, stopped, restarting, no worker slot) and since when, syncs running, Notion requests in flight and waiting.';

-- sync_status counts syncs only (write-back's pushes are runs with trigger 'writeback').
CREATE OR REPLACE VIEW notion_sync.sync_status AS
SELECT d.user_id, d.database_id, d.database_name, d.target_table, d.schedule, d.timezone,
       d.next_run_at AS next_run,
       r.started_at AS last_run_at, r.finished_at AS last_finished_at, r.trigger AS last_trigger,
       r.mode AS last_mode, r.status AS last_status, r.duration_ms AS last_duration_ms,
       pg_catalog.now() - ok.started_at AS lag,
       e.error AS last_error, e.started_at AS last_error_at,
       d.watermark, d.last_full_sync_at,
       notion_sync._row_count(d.target_table, d.user_id, d.database_id) AS rows
  FROM notion_sync.databases d
  LEFT JOIN LATERAL (SELECT * FROM notion_sync.sync_runs x
                      WHERE x.user_id = d.user_id AND x.database_id = d.database_id AND x.trigger <> 'writeback'
                      ORDER BY x.run_id DESC LIMIT 1) r ON true
  LEFT JOIN LATERAL (SELECT x.started_at FROM notion_sync.sync_runs x
                      WHERE x.user_id = d.user_id AND x.database_id = d.database_id AND x.trigger <> 'writeback'
                        AND x.status IN ('succeeded', 'partial')
                      ORDER BY x.run_id DESC LIMIT 1) ok ON true
  LEFT JOIN LATERAL (SELECT x.error, x.started_at FROM notion_sync.sync_runs x
                      WHERE x.user_id = d.user_id AND x.database_id = d.database_id AND x.trigger <> 'writeback'
                        AND x.error IS NOT NULL AND x.status <> 'skipped'
                      ORDER BY x.run_id DESC LIMIT 1) e ON true;

-- Write-back's functions in Rust (src/writeback/mod.rs).
CREATE FUNCTION notion_sync._applying()
RETURNS bool STRICT VOLATILE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_applying_wrapper';
CREATE FUNCTION notion_sync._wake_writeback()
RETURNS void STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_wake_writeback_wrapper';
CREATE FUNCTION notion_sync._writeback_schema(p_user_id text, p_database_id text)
RETURNS jsonb STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_writeback_schema_wrapper';
CREATE FUNCTION notion_sync._write_page(p_user_id text, p_op text, p_id text, p_properties jsonb)
RETURNS jsonb VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_write_page_wrapper';

-- Write-back (0.2.0): sql/writeback.sql, verbatim (src/writeback/mod.rs tests hold it so).
-- Write-back (0.2.0, src/writeback/): changes made in Postgres reach Notion. Opt in per registered
-- database (enable_writeback); an AFTER ROW trigger records each change in the outbox inside the
-- user's own transaction; the worker pushes it (no transaction open during HTTP) once its commit
-- woke it and the debounce window passed, reading the changed properties back first: an equal
-- value is patched, one already as wanted costs no write, another one is a conflict settled by the
-- registration's policy. The engine's own writes never enter the outbox (notion_sync._applying()).
-- This file is copied verbatim into sql/notion_sync--0.1.0--0.2.0.sql (a unit test holds them equal).

-- One row per database whose changes flow back.
CREATE TABLE notion_sync.writeback (
  user_id        text NOT NULL,
  database_id    text NOT NULL,
  -- What a conflict does: keep Notion's value (recorded), send ours anyway (recorded), or hold the
  -- change until resolve_writeback.
  conflict       text NOT NULL DEFAULT 'notion_wins' CHECK (conflict IN ('notion_wins', 'postgres_wins', 'manual')),
  -- What a DELETE of a mapped row does: nothing in Notion, or trash the page.
  deletes        text NOT NULL DEFAULT 'ignore' CHECK (deletes IN ('ignore', 'trash')),
  -- Columns (or, for a sync table, property names) that flow back; NULL: every writable one.
  columns        text[],
  -- A property holding the row key: how a create whose answer was lost is found again.
  key_property   text,
  -- Where created pages go (the database's first data source).
  data_source_id text,
  -- The schema when write-back was enabled: property name -> {"id", "type"}.
  properties     jsonb NOT NULL DEFAULT '{}',
  -- A mapped table's primary key columns: where a created page's id is written back.
  key_columns    text[],
  -- Set when a batch would trash too much of the database (approve_writeback lifts it).
  halted_at      timestamptz,
  halt_reason    text,
  created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (user_id, database_id)
);
REVOKE ALL ON notion_sync.writeback FROM PUBLIC;

-- Changes waiting for Notion, and what became of them. Logged, written in the user's transaction:
-- a ROLLBACK drops the change, a crash loses none. No secrets; readable by superusers only.
CREATE TABLE notion_sync.outbox (
  id             bigserial PRIMARY KEY,
  user_id        text NOT NULL,
  database_id    text NOT NULL,
  target_table   text NOT NULL,
  -- NULL for a row not yet in Notion (a create, or an edit of a row whose create is on its way).
  notion_page_id text,
  -- The row's primary key (a mapped table), to write a created page's id back.
  row_key        jsonb,
  op             text NOT NULL CHECK (op IN ('update', 'create')),
  -- Property name -> {"id", "type", "from": value the edit started from, "to": value wanted,
  -- "column"}; "@in_trash" -> {"from", "to"}. Values in their plain form (README).
  changes        jsonb NOT NULL DEFAULT '{}',
  status         text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'in_flight', 'done', 'conflict', 'failed', 'ambiguous',
                                   'halted', 'cancelled')),
  -- How many row edits this change merges (debounce).
  edits          int NOT NULL DEFAULT 1,
  attempts       int NOT NULL DEFAULT 0,
  -- Not sent before: the end of the debounce window, or of a retry's backoff.
  not_before     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  queued_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  sent_at        timestamptz,
  done_at        timestamptz,
  requests       int NOT NULL DEFAULT 0,
  -- Set by approve_writeback: a trash in a batch the user approved.
  approved       boolean NOT NULL DEFAULT false,
  -- An attempt may have reached Notion (its answer lost, or a stop interrupted it): a create
  -- looks for its page before it posts again. Never cleared.
  maybe_sent     boolean NOT NULL DEFAULT false,
  -- What happened ('patched', 'already as wanted', 'created <id>', ...), or the last error with
  -- Notion's code and request id.
  result         text,
  error          text,
  notion_code    text,
  request_id     text,
  -- Property -> {"base", "local", "notion", "resolution"} for each conflict found.
  conflicts      jsonb
);
-- One open change per page: edits inside the debounce window merge into it.
CREATE UNIQUE INDEX outbox_open_page_idx ON notion_sync.outbox (user_id, notion_page_id)
  WHERE status = 'pending' AND notion_page_id IS NOT NULL;
CREATE INDEX outbox_due_idx ON notion_sync.outbox (not_before) WHERE status = 'pending';
CREATE INDEX outbox_db_idx ON notion_sync.outbox (user_id, database_id, status);
REVOKE ALL ON notion_sync.outbox FROM PUBLIC;
ALTER TABLE notion_sync.outbox ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
  PERFORM pg_catalog.pg_extension_config_dump('notion_sync.writeback'::regclass, '');
  PERFORM pg_catalog.pg_extension_config_dump('notion_sync.outbox'::regclass, '');
  PERFORM pg_catalog.pg_extension_config_dump('notion_sync.outbox_id_seq'::regclass, '');
END
$$;

-- Property types Notion computes (refused at once: 428C9, as for a generated column), and those
-- write-back does not write yet (0A000).
CREATE FUNCTION notion_sync._read_only_type(p_type text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT p_type = ANY (ARRAY['formula', 'rollup', 'created_time', 'created_by', 'last_edited_time',
                                 'last_edited_by', 'unique_id', 'button', 'verification']) $$;

CREATE FUNCTION notion_sync._writable_type(p_type text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT p_type = ANY (ARRAY['title', 'rich_text', 'number', 'select', 'status', 'multi_select', 'date',
                                 'checkbox', 'url', 'email', 'phone_number', 'relation', 'people']) $$;

-- Refuses a change to property p_name of type p_type (read-only: 428C9; not written yet: 0A000).
CREATE FUNCTION notion_sync._check_writable(p_name text, p_type text, p_what text)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF notion_sync._read_only_type(p_type) THEN
    RAISE EXCEPTION '% is Notion property "%" of type %, which Notion computes: it cannot be written',
      p_what, p_name, p_type USING ERRCODE = '428C9',
      HINT = 'Only title, rich_text, number, select, status, multi_select, date, checkbox, url, email, phone_number, relation and people are written back.';
  END IF;
  IF NOT notion_sync._writable_type(p_type) THEN
    RAISE EXCEPTION '% is Notion property "%" of type %, which write-back does not write', p_what, p_name, p_type
      USING ERRCODE = '0A000';
  END IF;
END
$$;

-- Edits of one page merged: each property keeps the value its first edit started from, takes the
-- last one's wanted value, and keeps the values wanted in between in "also" (one of them may have
-- reached Notion already: finding it there is no conflict).
CREATE FUNCTION notion_sync._merge_changes(p_old jsonb, p_new jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT coalesce(p_old, '{}') || coalesce(
    (SELECT pg_catalog.jsonb_object_agg(e.key, CASE WHEN p_old ? e.key
       THEN e.value || pg_catalog.jsonb_build_object('from', p_old -> e.key -> 'from',
              'also', coalesce(p_old -> e.key -> 'also', '[]') || pg_catalog.jsonb_build_array(p_old -> e.key -> 'to'))
       ELSE e.value END)
       FROM pg_catalog.jsonb_each(p_new) e), '{}')
$$;

-- Makes a change pending again (a retry, a stop, an approval, a resolution): an edit of the same
-- page queued meanwhile is folded into it, since a page has one open change.
CREATE FUNCTION notion_sync._requeue(p_id bigint, p_not_before timestamptz)
RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  y notion_sync.outbox;
BEGIN
  LOOP
    DELETE FROM notion_sync.outbox o
     USING notion_sync.outbox x
     WHERE x.id = p_id AND o.user_id = x.user_id AND o.notion_page_id = x.notion_page_id
       AND o.status = 'pending' AND o.id <> p_id
    RETURNING o.* INTO y;
    IF y.id IS NOT NULL THEN
      UPDATE notion_sync.outbox SET changes = notion_sync._merge_changes(changes, y.changes),
                                    edits = edits + y.edits, approved = approved AND y.approved
       WHERE id = p_id;
    END IF;
    BEGIN
      UPDATE notion_sync.outbox SET status = 'pending', not_before = p_not_before WHERE id = p_id;
      RETURN;
    EXCEPTION WHEN unique_violation THEN
      y := NULL;  -- an edit came in between: fold it too
    END;
  END LOOP;
END
$$;

-- Records one change in the outbox (merged into the page's open change if it has one) and wakes
-- the worker at commit. Called by the write-back triggers only.
CREATE FUNCTION notion_sync._enqueue(p_user_id text, p_database_id text, p_target text, p_page_id text,
                                     p_row_key jsonb, p_op text, p_changes jsonb)
RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_wait interval := make_interval(secs => coalesce(nullif(current_setting('notion_sync.writeback_debounce_ms', true), ''), '1000')::int / 1000.0);
  v_now timestamptz := clock_timestamp();
BEGIN
  IF p_page_id IS NOT NULL THEN
    INSERT INTO notion_sync.outbox AS x (user_id, database_id, target_table, notion_page_id, op, changes, not_before)
    VALUES (p_user_id, p_database_id, p_target, p_page_id, p_op, p_changes, v_now + v_wait)
    ON CONFLICT (user_id, notion_page_id) WHERE status = 'pending' AND notion_page_id IS NOT NULL
    DO UPDATE SET changes = notion_sync._merge_changes(x.changes, EXCLUDED.changes),
                  -- Each edit moves the window, up to 10 windows after the first edit.
                  not_before = least(EXCLUDED.not_before, x.queued_at + v_wait * 10),
                  edits = x.edits + 1;
  ELSE
    UPDATE notion_sync.outbox x
       SET changes = notion_sync._merge_changes(x.changes, p_changes),
           not_before = least(v_now + v_wait, x.queued_at + v_wait * 10), edits = x.edits + 1
     WHERE x.status = 'pending' AND x.notion_page_id IS NULL AND x.user_id = p_user_id
       AND x.database_id = p_database_id AND x.row_key = p_row_key;
    IF NOT FOUND THEN
      INSERT INTO notion_sync.outbox (user_id, database_id, target_table, row_key, op, changes, not_before)
      VALUES (p_user_id, p_database_id, p_target, p_row_key, p_op, p_changes, v_now + v_wait);
    END IF;
  END IF;
  PERFORM notion_sync._wake_writeback();
END
$$;

-- Whether write-back is enabled for (p_user_id, p_database_id): the sync tables' UPDATE policy
-- (which checks the user itself: inside this function current_user is its owner).
CREATE FUNCTION notion_sync._writeback_on(p_user_id text, p_database_id text)
RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT 1 FROM notion_sync.writeback w WHERE w.user_id = p_user_id AND w.database_id = p_database_id)
$$;

-- The sync tables' trigger: their title column, text column(s), in_trash and the values in
-- properties flow back. Which property a text column is written to follows the engine's rule
-- (src/storage/sync_table.rs TABLES): the first of its properties holding the column's text.
CREATE FUNCTION notion_sync._queue_sync_row()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  w notion_sync.writeback;
  -- Filled once write-back is known to be on: a database without it costs one index lookup.
  o jsonb;
  n jsonb;
  cols jsonb := CASE TG_TABLE_NAME
    WHEN 'notion_characters_sync' THEN '{"name": null, "description": ["Description", "Bio", "Summary"]}'
    WHEN 'notion_worlds_sync' THEN '{"name": null, "description": ["Description", "Summary"]}'
    WHEN 'notion_stories_sync' THEN '{"title": null, "content": ["Content", "Summary", "Description"], "description": ["Description", "Summary"]}'
    WHEN 'notion_chat_sessions_sync' THEN '{"title": null, "transcript": ["Transcript", "Messages"]}'
    ELSE '{"title": null, "description": ["Description", "Summary", "Notes"]}' END::jsonb;
  ch jsonb := '{}';
  c record;
  p record;
  v_name text;
  v_prop jsonb;
BEGIN
  SELECT * INTO w FROM notion_sync.writeback x WHERE x.user_id = OLD.user_id AND x.database_id = OLD.notion_database_id;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  o := to_jsonb(OLD);
  n := to_jsonb(NEW);
  IF n -> 'notion_page_id' IS DISTINCT FROM o -> 'notion_page_id' OR n -> 'user_id' IS DISTINCT FROM o -> 'user_id'
     OR n -> 'notion_database_id' IS DISTINCT FROM o -> 'notion_database_id' THEN
    RAISE EXCEPTION 'a synced row keeps its page, database and user' USING ERRCODE = '428C9';
  END IF;
  FOR c IN SELECT e.key AS col, e.value AS props FROM jsonb_each(cols) e LOOP
    CONTINUE WHEN n -> c.col IS NOT DISTINCT FROM o -> c.col;
    IF jsonb_typeof(c.props) = 'null' THEN
      SELECT e.key INTO v_name FROM jsonb_each(OLD.properties) e WHERE e.value ->> 'type' = 'title' LIMIT 1;
    ELSE
      -- The property the column was filled from, else the first of its properties the page has.
      SELECT x.name INTO v_name
        FROM jsonb_array_elements_text(c.props) WITH ORDINALITY x(name, i)
       WHERE OLD.properties ? x.name
       ORDER BY (OLD.properties -> x.name ->> 'value') IS NOT DISTINCT FROM (o ->> c.col) DESC, x.i
       LIMIT 1;
    END IF;
    IF v_name IS NULL THEN
      RAISE EXCEPTION 'column % of % has no Notion property to write to in page %: it comes from the page body',
        c.col, TG_TABLE_NAME, OLD.notion_page_id USING ERRCODE = '0A000';
    END IF;
    CONTINUE WHEN w.columns IS NOT NULL AND NOT (c.col = ANY (w.columns) OR v_name = ANY (w.columns));
    v_prop := OLD.properties -> v_name;
    PERFORM notion_sync._check_writable(v_name, v_prop ->> 'type', format('column %s', c.col));
    ch := ch || jsonb_build_object(v_name, jsonb_build_object('id', v_prop -> 'id', 'type', v_prop -> 'type',
      'from', v_prop -> 'value', 'to', n -> c.col, 'column', c.col));
  END LOOP;
  IF NEW.properties IS DISTINCT FROM OLD.properties THEN
    FOR p IN SELECT coalesce(a.key, b.key) AS name, a.value AS old, b.value AS new
               FROM jsonb_each(OLD.properties) a FULL JOIN jsonb_each(NEW.properties) b ON a.key = b.key
              WHERE a.value IS DISTINCT FROM b.value LOOP
      IF p.old IS NULL OR p.new IS NULL THEN
        RAISE EXCEPTION 'property "%" cannot be added or removed here: properties are changed in Notion', p.name
          USING ERRCODE = '0A000';
      END IF;
      IF p.new -> 'type' IS DISTINCT FROM p.old -> 'type' OR p.new -> 'id' IS DISTINCT FROM p.old -> 'id' THEN
        RAISE EXCEPTION 'only the value of property "%" can be changed, not its type or id', p.name
          USING ERRCODE = '428C9';
      END IF;
      CONTINUE WHEN p.new -> 'value' IS NOT DISTINCT FROM p.old -> 'value' OR ch ? p.name;
      CONTINUE WHEN w.columns IS NOT NULL AND NOT p.name = ANY (w.columns);
      PERFORM notion_sync._check_writable(p.name, p.old ->> 'type', 'properties');
      ch := ch || jsonb_build_object(p.name, jsonb_build_object('id', p.old -> 'id', 'type', p.old -> 'type',
        'from', p.old -> 'value', 'to', p.new -> 'value', 'column', 'properties'));
    END LOOP;
  END IF;
  IF NEW.in_trash IS DISTINCT FROM OLD.in_trash AND (w.columns IS NULL OR 'in_trash' = ANY (w.columns)) THEN
    ch := ch || jsonb_build_object('@in_trash', jsonb_build_object('from', OLD.in_trash, 'to', NEW.in_trash,
                                                                   'column', 'in_trash'));
  END IF;
  IF ch <> '{}' THEN
    PERFORM notion_sync._enqueue(OLD.user_id, OLD.notion_database_id, 'notion_sync.' || TG_TABLE_NAME,
                                 OLD.notion_page_id, NULL, 'update', ch);
  END IF;
  RETURN NULL;
END
$$;

DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES ('notion_characters_sync', 'name, description'),
                                 ('notion_worlds_sync', 'name, description'),
                                 ('notion_stories_sync', 'title, content, description'),
                                 ('notion_chat_sessions_sync', 'title, transcript'),
                                 ('notion_pages_sync', 'title, description')) v(tbl, cols) LOOP
    EXECUTE format('CREATE TRIGGER notion_sync_writeback AFTER UPDATE ON notion_sync.%I FOR EACH ROW '
                   'WHEN (NOT notion_sync._applying()) EXECUTE FUNCTION notion_sync._queue_sync_row()', t.tbl);
    -- A role edits its own user's rows, of databases with write-back on (RLS WITH CHECK).
    EXECUTE format('CREATE POLICY own_rows_writeback ON notion_sync.%I FOR UPDATE '
                   'USING (user_id = notion_sync.current_user_id()) '
                   'WITH CHECK (user_id = notion_sync.current_user_id() '
                   'AND notion_sync._writeback_on(user_id, notion_database_id))', t.tbl);
    EXECUTE format('GRANT UPDATE (%s, properties, in_trash) ON notion_sync.%I TO PUBLIC', t.cols, t.tbl);
  END LOOP;
END
$$;

-- The trigger of a table of the user's own (created by enable_writeback, arguments user and
-- database): mapped columns that changed flow back; an INSERT without a page id creates a page; a
-- DELETE trashes it when the registration says so.
CREATE FUNCTION notion_sync._queue_mapped_row()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user text := TG_ARGV[0];
  v_db text := TG_ARGV[1];
  w notion_sync.writeback;
  d notion_sync.databases;
  o jsonb;
  n jsonb;
  v_idcol text;
  v_page text;
  c record;
  v_name text;
  v_prop jsonb;
  ch jsonb := '{}';
  v_key jsonb;
BEGIN
  SELECT * INTO w FROM notion_sync.writeback x WHERE x.user_id = v_user AND x.database_id = v_db;
  SELECT * INTO d FROM notion_sync.databases x WHERE x.user_id = v_user AND x.database_id = v_db;
  IF w.user_id IS NULL OR d.target_columns IS NULL THEN
    RETURN NULL;
  END IF;
  o := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
  n := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
  SELECT e.key INTO v_idcol FROM jsonb_each_text(d.target_columns) e WHERE e.value = '@id';
  v_page := coalesce(o, n) ->> v_idcol;
  IF TG_OP = 'DELETE' THEN
    IF v_page IS NULL AND w.key_columns IS NOT NULL THEN
      -- A row deleted before its page was created: no page for it.
      UPDATE notion_sync.outbox x SET status = 'cancelled', result = 'its row was deleted', done_at = clock_timestamp()
       WHERE x.status = 'pending' AND x.notion_page_id IS NULL AND x.user_id = v_user AND x.database_id = v_db
         AND x.row_key = (SELECT jsonb_object_agg(k, o -> k) FROM unnest(w.key_columns) k);
    END IF;
    IF w.deletes = 'trash' AND v_page IS NOT NULL THEN
      PERFORM notion_sync._enqueue(v_user, v_db, d.target_table, v_page, NULL, 'update',
        '{"@in_trash": {"from": false, "to": true, "column": null}}');
    END IF;
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' AND o -> v_idcol IS DISTINCT FROM n -> v_idcol THEN
    RAISE EXCEPTION 'column % holds the Notion page id (@id): it cannot be changed while write-back is on', v_idcol
      USING ERRCODE = '428C9';
  END IF;
  -- A row inserted with its page id is a page of Notion's already.
  IF TG_OP = 'INSERT' AND v_page IS NOT NULL THEN
    RETURN NULL;
  END IF;
  FOR c IN SELECT e.key AS col, e.value AS src FROM jsonb_each_text(d.target_columns) e WHERE e.key <> v_idcol LOOP
    CONTINUE WHEN TG_OP = 'UPDATE' AND o -> c.col IS NOT DISTINCT FROM n -> c.col;
    CONTINUE WHEN TG_OP = 'INSERT' AND coalesce(jsonb_typeof(n -> c.col), 'null') = 'null';
    CONTINUE WHEN w.columns IS NOT NULL AND NOT c.col = ANY (w.columns);
    IF c.src = '@in_trash' THEN
      ch := ch || jsonb_build_object('@in_trash', jsonb_build_object('from', coalesce(o -> c.col, 'false'),
                                                                     'to', coalesce(n -> c.col, 'false'), 'column', c.col));
      CONTINUE;
    ELSIF c.src = '@title' THEN
      SELECT e.key, e.value INTO v_name, v_prop FROM jsonb_each(w.properties) e WHERE e.value ->> 'type' = 'title';
    ELSIF c.src LIKE '@%' THEN
      -- A new row's value of what Notion computes (a default) is Notion's to set.
      CONTINUE WHEN TG_OP = 'INSERT';
      RAISE EXCEPTION 'column % is mapped to %, which cannot be written back to Notion', c.col, c.src
        USING ERRCODE = '428C9';
    ELSE
      SELECT e.key, e.value INTO v_name, v_prop FROM jsonb_each(w.properties) e
       WHERE e.key = c.src OR e.value ->> 'id' = c.src ORDER BY e.key = c.src DESC LIMIT 1;
    END IF;
    IF v_name IS NULL THEN
      RAISE EXCEPTION 'column % is mapped to %, which the database''s schema does not have: call notion_sync.enable_writeback again after a schema change',
        c.col, c.src USING ERRCODE = '42703';
    END IF;
    CONTINUE WHEN TG_OP = 'INSERT' AND NOT notion_sync._writable_type(v_prop ->> 'type');
    PERFORM notion_sync._check_writable(v_name, v_prop ->> 'type', format('column %s', c.col));
    ch := ch || jsonb_build_object(v_name, jsonb_build_object('id', v_prop -> 'id', 'type', v_prop -> 'type',
      'from', o -> c.col, 'to', n -> c.col, 'column', c.col));
  END LOOP;
  IF ch = '{}' THEN
    RETURN NULL;
  END IF;
  IF v_page IS NOT NULL THEN
    PERFORM notion_sync._enqueue(v_user, v_db, d.target_table, v_page, NULL, 'update', ch);
    RETURN NULL;
  END IF;
  IF w.key_columns IS NULL THEN
    RAISE EXCEPTION 'a row of % without a page id (column %) is created in Notion only when the table has a primary key of other columns',
      d.target_table, v_idcol USING ERRCODE = '0A000';
  END IF;
  SELECT jsonb_object_agg(k, n -> k) INTO v_key FROM unnest(w.key_columns) k;
  PERFORM notion_sync._enqueue(v_user, v_db, d.target_table, NULL, v_key,
                               CASE TG_OP WHEN 'INSERT' THEN 'create' ELSE 'update' END, ch);
  RETURN NULL;
END
$$;

-- The name of the write-back trigger enable_writeback puts on a table of the user's own (one per
-- registration: two registrations may write one table).
CREATE FUNCTION notion_sync._writeback_trigger(p_user_id text, p_database_id text)
RETURNS name LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ('notion_sync_writeback_' || left(md5(p_user_id || '/' || p_database_id), 12))::name $$;

-- Opts a registered database in. Reads its schema from Notion (one or two requests), which sets
-- what is writable; a table of the user's own gets the trigger notion_sync_writeback.
CREATE FUNCTION notion_sync.enable_writeback(
  p_user_id text, p_database_id text, p_conflict text DEFAULT 'notion_wins', p_deletes text DEFAULT 'ignore',
  p_columns text[] DEFAULT NULL, p_key_property text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id text := notion_sync.normalize_notion_id(p_database_id);
  d notion_sync.databases;
  v_schema jsonb;
  v_keys text[];
  v_idcol text;
  v_bad text;
  v_writable text[];
BEGIN
  PERFORM notion_sync._required(p_user_id, 'p_user_id');
  IF p_conflict IS NULL OR p_conflict NOT IN ('notion_wins', 'postgres_wins', 'manual') THEN
    RAISE EXCEPTION 'p_conflict must be notion_wins, postgres_wins or manual, got %', quote_nullable(p_conflict)
      USING ERRCODE = '22023';
  END IF;
  IF p_deletes IS NULL OR p_deletes NOT IN ('ignore', 'trash') THEN
    RAISE EXCEPTION 'p_deletes must be ignore or trash, got %', quote_nullable(p_deletes) USING ERRCODE = '22023';
  END IF;
  SELECT * INTO d FROM notion_sync.databases x WHERE x.user_id = p_user_id AND x.database_id = v_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'database % is not registered for user %: notion_sync.register_database first', v_id, p_user_id
      USING ERRCODE = '42704';
  END IF;
  IF d.page_tree_depth IS NOT NULL THEN
    RAISE EXCEPTION 'write-back is for databases; % is a page tree', v_id USING ERRCODE = '0A000';
  END IF;
  v_schema := notion_sync._writeback_schema(p_user_id, v_id);
  SELECT array_agg(e.key ORDER BY e.key) INTO v_writable FROM jsonb_each(v_schema -> 'properties') e
   WHERE notion_sync._writable_type(e.value ->> 'type');
  IF d.target_columns IS NOT NULL THEN
    SELECT string_agg(c, ', ') INTO v_bad FROM unnest(p_columns) c WHERE NOT d.target_columns ? c;
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'p_columns names columns not in the column map of %: %', d.target_table, v_bad USING ERRCODE = '42703';
    END IF;
    SELECT e.key INTO v_idcol FROM jsonb_each_text(d.target_columns) e WHERE e.value = '@id';
    SELECT array_agg(a.attname::text ORDER BY k.i) INTO v_keys
      FROM pg_index x, unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, i), pg_attribute a
     WHERE x.indrelid = d.target_table::regclass AND x.indisprimary
       AND a.attrelid = x.indrelid AND a.attnum = k.attnum;
    IF v_idcol = ANY (v_keys) THEN
      v_keys := NULL;
    END IF;
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW '
                   'WHEN (NOT notion_sync._applying()) EXECUTE FUNCTION notion_sync._queue_mapped_row(%L, %L)',
                   notion_sync._writeback_trigger(p_user_id, v_id), d.target_table, p_user_id, v_id);
  ELSE
    SELECT string_agg(c, ', ') INTO v_bad FROM unnest(p_columns) c
     WHERE NOT (v_schema -> 'properties' ? c OR c IN ('name', 'title', 'description', 'content', 'transcript', 'in_trash'));
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'p_columns names neither columns of % nor properties of the database: %', d.target_table, v_bad
        USING ERRCODE = '42703';
    END IF;
  END IF;
  IF p_key_property IS NOT NULL
     AND coalesce(v_schema -> 'properties' -> p_key_property ->> 'type', '') NOT IN ('title', 'rich_text') THEN
    RAISE EXCEPTION 'p_key_property must name a title or text property of the database, got %', quote_literal(p_key_property)
      USING ERRCODE = '22023';
  END IF;
  IF p_key_property IS NOT NULL AND d.target_columns IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM jsonb_each_text(d.target_columns) e WHERE e.value IN (p_key_property, v_schema -> 'properties' -> p_key_property ->> 'id')) THEN
    RAISE EXCEPTION 'p_key_property % is not mapped to a column of %: creates could not be found again', quote_literal(p_key_property), d.target_table
      USING ERRCODE = '22023';
  END IF;
  INSERT INTO notion_sync.writeback AS x (user_id, database_id, conflict, deletes, columns, key_property,
                                          data_source_id, properties, key_columns)
  VALUES (p_user_id, v_id, p_conflict, p_deletes, p_columns, p_key_property, v_schema ->> 'data_source_id',
          v_schema -> 'properties', v_keys)
  ON CONFLICT (user_id, database_id) DO UPDATE
    SET conflict = EXCLUDED.conflict, deletes = EXCLUDED.deletes, columns = EXCLUDED.columns,
        key_property = EXCLUDED.key_property, data_source_id = EXCLUDED.data_source_id,
        properties = EXCLUDED.properties, key_columns = EXCLUDED.key_columns;
  IF NOT coalesce(current_setting('notion_sync.writeback_enabled', true), 'off') IN ('on', 'true') THEN
    RAISE NOTICE 'changes to % are queued, and sent once notion_sync.writeback_enabled is on', d.target_table
      USING HINT = 'ALTER SYSTEM SET notion_sync.writeback_enabled = on; SELECT pg_reload_conf();';
  END IF;
  RETURN jsonb_build_object('database_id', v_id, 'target_table', d.target_table, 'conflict', p_conflict,
    'deletes', p_deletes, 'data_source_id', v_schema ->> 'data_source_id', 'writable', to_jsonb(v_writable),
    'creates', d.target_columns IS NULL OR v_keys IS NOT NULL);
END
$$;

-- Opts a database out: its trigger goes, its changes not sent yet are cancelled (kept, visible).
CREATE FUNCTION notion_sync.disable_writeback(p_user_id text, p_database_id text)
RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id text := notion_sync.normalize_notion_id(p_database_id);
  v_table text;
  v_n bigint;
BEGIN
  DELETE FROM notion_sync.writeback WHERE user_id = p_user_id AND database_id = v_id;
  SELECT target_table INTO v_table FROM notion_sync.databases
   WHERE user_id = p_user_id AND database_id = v_id AND target_columns IS NOT NULL;
  IF v_table IS NOT NULL AND to_regclass(v_table) IS NOT NULL THEN
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', notion_sync._writeback_trigger(p_user_id, v_id), v_table);
  END IF;
  UPDATE notion_sync.outbox SET status = 'cancelled', result = 'write-back disabled', done_at = clock_timestamp()
   WHERE user_id = p_user_id AND database_id = v_id AND status IN ('pending', 'conflict', 'halted', 'ambiguous', 'failed');
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;

-- Sends a failed, ambiguous or conflicting change again (one, or every one of a user), re-read first.
CREATE FUNCTION notion_sync.retry_writeback(p_user_id text, p_id bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
  v_n bigint := 0;
BEGIN
  FOR v_id IN SELECT id FROM notion_sync.outbox
               WHERE user_id = p_user_id AND (p_id IS NULL OR id = p_id) AND status IN ('failed', 'ambiguous')
               ORDER BY id FOR UPDATE LOOP
    UPDATE notion_sync.outbox SET attempts = 0, error = NULL WHERE id = v_id;
    PERFORM notion_sync._requeue(v_id, clock_timestamp());
    v_n := v_n + 1;
  END LOOP;
  PERFORM notion_sync._wake_writeback();
  RETURN v_n;
END
$$;

-- Settles a held change: a conflict ('notion': keep Notion's values; 'postgres': send ours), or an
-- ambiguous create ('created' with the page id it made; 'not_created': create it now).
CREATE FUNCTION notion_sync.resolve_writeback(p_user_id text, p_id bigint, p_resolution text, p_page_id text DEFAULT NULL)
RETURNS notion_sync.outbox LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  x notion_sync.outbox;
BEGIN
  SELECT * INTO x FROM notion_sync.outbox WHERE user_id = p_user_id AND id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no write-back change % for user %', p_id, p_user_id USING ERRCODE = '42704';
  END IF;
  IF x.status = 'conflict' AND p_resolution IN ('notion', 'postgres') THEN
    -- Each conflicting property now starts from Notion's value; 'notion' also wants it, so the push
    -- sends the other properties only and stores the page (the row follows Notion), 'postgres'
    -- sends ours.
    UPDATE notion_sync.outbox
       SET changes = changes || (SELECT jsonb_object_agg(k, changes -> k || jsonb_build_object('from', conflicts -> k -> 'notion')
                                         || CASE WHEN p_resolution = 'notion' THEN jsonb_build_object('to', conflicts -> k -> 'notion')
                                                 ELSE '{}' END)
                                   FROM jsonb_object_keys(conflicts) k WHERE changes ? k),
           conflicts = (SELECT jsonb_object_agg(k, v || jsonb_build_object('resolution', 'resolved: ' || p_resolution))
                          FROM jsonb_each(conflicts) e(k, v)),
           attempts = 0
     WHERE id = p_id;
    PERFORM notion_sync._requeue(p_id, clock_timestamp());
  ELSIF x.status = 'ambiguous' AND p_resolution = 'created' AND p_page_id IS NOT NULL THEN
    UPDATE notion_sync.outbox SET notion_page_id = notion_sync.normalize_notion_id(p_page_id), attempts = 0
     WHERE id = p_id;
    PERFORM notion_sync._requeue(p_id, clock_timestamp());
  ELSIF x.status = 'ambiguous' AND p_resolution = 'not_created' THEN
    UPDATE notion_sync.outbox SET status = 'pending', attempts = 0, maybe_sent = false, not_before = clock_timestamp()
     WHERE id = p_id;
  ELSE
    RAISE EXCEPTION 'change % is %: resolve a conflict with ''notion'' or ''postgres'', an ambiguous create with ''created'' (and p_page_id) or ''not_created''',
      p_id, x.status USING ERRCODE = '22023';
  END IF;
  SELECT * INTO x FROM notion_sync.outbox WHERE id = p_id;
  PERFORM notion_sync._wake_writeback();
  RETURN x;
END
$$;

-- Lets a halted mass trash go on: its changes are sent, and write-back of the database resumes.
CREATE FUNCTION notion_sync.approve_writeback(p_user_id text, p_database_id text)
RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id text := notion_sync.normalize_notion_id(p_database_id);
  v_n bigint;
  v_change bigint;
BEGIN
  UPDATE notion_sync.writeback SET halted_at = NULL, halt_reason = NULL WHERE user_id = p_user_id AND database_id = v_id;
  v_n := 0;
  FOR v_change IN SELECT id FROM notion_sync.outbox
                   WHERE user_id = p_user_id AND database_id = v_id AND status = 'halted' ORDER BY id FOR UPDATE LOOP
    UPDATE notion_sync.outbox SET approved = true WHERE id = v_change;
    PERFORM notion_sync._requeue(v_change, clock_timestamp());
    v_n := v_n + 1;
  END LOOP;
  PERFORM notion_sync._wake_writeback();
  RETURN v_n;
END
$$;

-- Write-back per database: what waits, what is on its way, what needs the user.
CREATE VIEW notion_sync.writeback_status AS
SELECT w.user_id, w.database_id, d.database_name, d.target_table, w.conflict, w.deletes,
       w.halted_at IS NOT NULL AS halted, w.halt_reason,
       coalesce(current_setting('notion_sync.writeback_enabled', true), 'off') IN ('on', 'true') AS delivering,
       count(o.id) FILTER (WHERE o.status = 'pending') AS pending,
       count(o.id) FILTER (WHERE o.status = 'in_flight') AS in_flight,
       count(o.id) FILTER (WHERE o.status = 'conflict') AS conflicts,
       count(o.id) FILTER (WHERE o.status = 'failed') AS failed,
       count(o.id) FILTER (WHERE o.status = 'ambiguous') AS ambiguous,
       count(o.id) FILTER (WHERE o.status = 'halted') AS halted_changes,
       count(o.id) FILTER (WHERE o.status = 'done') AS done,
       pg_catalog.now() - min(o.queued_at) FILTER (WHERE o.status IN ('pending', 'in_flight', 'halted')) AS oldest_pending_age,
       max(o.done_at) FILTER (WHERE o.status = 'done') AS last_pushed_at
  FROM notion_sync.writeback w
  JOIN notion_sync.databases d ON d.user_id = w.user_id AND d.database_id = w.database_id
  LEFT JOIN notion_sync.outbox o ON o.user_id = w.user_id AND o.database_id = w.database_id
 GROUP BY w.user_id, w.database_id, d.database_name, d.target_table, w.conflict, w.deletes, w.halted_at, w.halt_reason;

-- Every conflict found, one row per property: the value the edit started from, ours, Notion's, and
-- what was done.
CREATE VIEW notion_sync.writeback_conflicts AS
SELECT o.id AS change_id, o.user_id, o.database_id, o.notion_page_id, o.status, c.key AS property,
       c.value -> 'base' AS base_value, c.value -> 'local' AS local_value, c.value -> 'notion' AS notion_value,
       c.value ->> 'resolution' AS resolution, coalesce(o.done_at, o.sent_at) AS detected_at
  FROM notion_sync.outbox o, jsonb_each(o.conflicts) c
 WHERE o.conflicts IS NOT NULL;

-- Changes one at a time, for the user who wants to see them.
CREATE VIEW notion_sync.writeback_queue AS
SELECT o.id, o.user_id, o.database_id, o.target_table, o.notion_page_id, o.row_key, o.op, o.changes, o.status,
       o.edits, o.attempts, o.queued_at, o.not_before, o.sent_at, o.done_at, o.requests, o.result, o.error,
       o.notion_code, o.request_id
  FROM notion_sync.outbox o;

-- Synchronous writes, for callers who want Notion's answer (or error) in their own statement.
CREATE FUNCTION notion_sync.update_page(p_user_id text, p_page_id text, p_properties jsonb)
RETURNS jsonb LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT notion_sync._write_page(p_user_id, 'update', p_page_id, p_properties) $$;

CREATE FUNCTION notion_sync.create_page(p_user_id text, p_database_id text, p_properties jsonb)
RETURNS jsonb LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT notion_sync._write_page(p_user_id, 'create', p_database_id, p_properties) $$;

CREATE FUNCTION notion_sync.trash_page(p_user_id text, p_page_id text)
RETURNS jsonb LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT notion_sync._write_page(p_user_id, 'trash', p_page_id, NULL) $$;

DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'notion_sync.enable_writeback(text, text, text, text, text[], text)',
    'notion_sync.disable_writeback(text, text)',
    'notion_sync.retry_writeback(text, bigint)',
    'notion_sync.resolve_writeback(text, bigint, text, text)',
    'notion_sync.approve_writeback(text, text)',
    'notion_sync.update_page(text, text, jsonb)',
    'notion_sync.create_page(text, text, jsonb)',
    'notion_sync.trash_page(text, text)'] LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO notion_sync_admin', f);
  END LOOP;
  FOREACH f IN ARRAY ARRAY[
    'notion_sync._enqueue(text, text, text, text, jsonb, text, jsonb)',
    'notion_sync._requeue(bigint, timestamptz)',
    'notion_sync._queue_sync_row()', 'notion_sync._queue_mapped_row()',
    'notion_sync._writeback_schema(text, text)', 'notion_sync._write_page(text, text, text, jsonb)',
    'notion_sync._wake_writeback()'] LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION notion_sync._writeback_on(text, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync._applying() TO PUBLIC;
REVOKE ALL ON notion_sync.writeback_status, notion_sync.writeback_conflicts, notion_sync.writeback_queue FROM PUBLIC;
GRANT SELECT ON notion_sync.writeback_status, notion_sync.writeback_conflicts, notion_sync.writeback_queue
  TO notion_sync_admin;

COMMENT ON FUNCTION notion_sync.enable_writeback(text, text, text, text, text[], text) IS
  'Sends changes made in Postgres to a registered database in Notion: updates, creates (a table of your own), trashes. p_conflict notion_wins | postgres_wins | manual; p_deletes ignore | trash; p_columns what flows back (NULL: every writable column); p_key_property the property holding the row key, to find a create whose answer was lost.';
COMMENT ON FUNCTION notion_sync.disable_writeback(text, text) IS
  'Stops write-back of a database; its changes not sent yet are cancelled (kept, visible). Returns how many.';
COMMENT ON FUNCTION notion_sync.retry_writeback(text, bigint) IS
  'Queues failed or ambiguous changes again (one, or every one of the user); each is read back before any write.';
COMMENT ON FUNCTION notion_sync.resolve_writeback(text, bigint, text, text) IS
  'Settles a held change: a conflict with ''notion'' or ''postgres'', an ambiguous create with ''created'' (and the page id) or ''not_created''.';
COMMENT ON FUNCTION notion_sync.approve_writeback(text, text) IS
  'Lets a halted mass trash of a database go to Notion. Returns the changes released.';
COMMENT ON FUNCTION notion_sync.update_page(text, text, jsonb) IS
  'Patches a page now (property name or id -> plain value) and stores Notion''s answer; Notion''s error is this statement''s.';
COMMENT ON FUNCTION notion_sync.create_page(text, text, jsonb) IS
  'Creates a page in a database now and stores it; never retried blindly. Returns its id and URL.';
COMMENT ON FUNCTION notion_sync.trash_page(text, text) IS
  'Moves a page to trash in Notion now and marks its row in trash.';
COMMENT ON VIEW notion_sync.writeback_status IS
  'Write-back per database: pending, in flight, conflicts, failed, ambiguous and halted changes, oldest pending age, last push.';
COMMENT ON VIEW notion_sync.writeback_conflicts IS
  'Every conflict write-back found, one row per property: the value the edit started from, ours, Notion''s, and the resolution.';
COMMENT ON VIEW notion_sync.writeback_queue IS
  'Write-back changes one by one, with their status, attempts, requests and Notion''s error.';
