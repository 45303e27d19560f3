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
