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
CREATE INDEX notion_stories_sync_search_idx ON notion_sync.notion_stories_sync USING gin (search_vector);

-- Data source ids per database, for webhooks that name only a data source.
ALTER TABLE notion_sync.databases ADD COLUMN data_sources text[];
CREATE INDEX databases_data_sources_idx ON notion_sync.databases USING gin (data_sources);

-- pg_dump keeps what users store (a dump holds tokens: treat it as a secret).
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['tokens', 'webhook_secrets', 'webhook_events', 'role_users', 'databases',
                           'sync_runs', 'sync_errors', 'mapped_pages', 'notion_characters_sync',
                           'notion_worlds_sync', 'notion_stories_sync', 'notion_chat_sessions_sync',
                           'notion_pages_sync', 'sync_runs_run_id_seq', 'sync_errors_id_seq'] LOOP
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
CREATE FUNCTION notion_sync.file_url(p_user_id text, p_page_id text, p_property text, p_index int DEFAULT 0)
RETURNS text LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT notion_sync._file_url(p_user_id, p_page_id, p_property, p_index) $$;
REVOKE ALL ON FUNCTION notion_sync._file_url(text, text, text, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.file_url(text, text, text, int) TO PUBLIC;

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
COMMENT ON FUNCTION notion_sync.unregister_database(text, text) IS
  'Stops syncing a database; rows already synced stay.';
COMMENT ON FUNCTION notion_sync.sync_notion_database(text, text, text, text, int) IS
  'Syncs one Notion database now (full or incremental, optionally the last p_hours_back hours) and returns the run''s counts and errors.';
COMMENT ON FUNCTION notion_sync.sync_all_notion_databases(text, text) IS
  'Syncs every registered database (of one user, or all) now; one result per database, a failing one does not stop the others.';
COMMENT ON FUNCTION notion_sync.file_url(text, text, text, int) IS
  'A working URL of a file Notion hosts: the stored one while it is valid, else read again from Notion.';
COMMENT ON FUNCTION notion_sync.get_notion_character(text, text, int) IS
  'Characters by name: exact, prefix, substring, then typo-tolerant matches, best first, at most p_limit (NULL for all).';
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
