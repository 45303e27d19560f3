-- The public API (design.md). SECURITY DEFINER functions pin search_path and are granted to
-- notion_sync_admin only; internal functions are revoked from PUBLIC.

-- Raises 22023 "<name> must not be empty" for NULL or blank text; returns it trimmed.
CREATE FUNCTION notion_sync._required(p_value text, p_name text)
RETURNS text LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_value IS NULL OR btrim(p_value) = '' THEN
    RAISE EXCEPTION '% must not be empty', p_name USING ERRCODE = '22023';
  END IF;
  RETURN btrim(p_value);
END
$$;

CREATE FUNCTION notion_sync.set_notion_token(p_user_id text, p_token text)
RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM notion_sync._required(p_user_id, 'p_user_id'), notion_sync._required(p_token, 'p_token');
  INSERT INTO notion_sync.tokens (user_id, token) VALUES (p_user_id, btrim(p_token))
  ON CONFLICT (user_id) DO UPDATE SET token = EXCLUDED.token, updated_at = now();
END
$$;

-- When a schedule runs next (cron in an IANA time zone, daylight saving included); NULL for manual.
CREATE FUNCTION notion_sync.next_run(p_schedule text, p_timezone text DEFAULT 'UTC',
                                     p_after timestamptz DEFAULT pg_catalog.now())
RETURNS timestamptz LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_catalog.to_timestamp(notion_sync._next_run(p_schedule, p_timezone, extract(epoch FROM p_after)::float8))
$$;

CREATE FUNCTION notion_sync.set_webhook_secret(p_user_id text, p_verification_token text)
RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM notion_sync._required(p_user_id, 'p_user_id'),
          notion_sync._required(p_verification_token, 'p_verification_token');
  INSERT INTO notion_sync.webhook_secrets (user_id, secret) VALUES (p_user_id, btrim(p_verification_token))
  ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, created_at = now(), verified_at = NULL;
END
$$;

-- What an app route / Edge Function calls with the raw body and the X-Notion-Signature header.
-- p_user_id names the user of a subscription handshake (optional when only one user has a token);
-- for events the secret that verifies the signature tells the user.
CREATE FUNCTION notion_sync.handle_webhook(p_body text, p_signature text DEFAULT NULL, p_user_id text DEFAULT NULL)
RETURNS jsonb LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT notion_sync._handle_webhook(p_body, p_signature, p_user_id)
$$;

-- Subscriptions (no secrets), queue depth, oldest pending age, last event, counts, last error.
CREATE FUNCTION notion_sync.webhook_health()
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  WITH r(v) AS (SELECT notion_sync._webhook_rejected())
  SELECT jsonb_build_object(
    'subscriptions', (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'user_id', s.user_id, 'subscription_id', s.subscription_id, 'verified', s.verified_at IS NOT NULL,
        'verified_at', s.verified_at, 'last_event_at', s.last_event_at) ORDER BY s.user_id), '[]'::jsonb)
        FROM notion_sync.webhook_secrets s),
    'queue_depth', count(*) FILTER (WHERE e.status = 'pending'),
    'oldest_pending_age_s', round(extract(epoch FROM now() - min(e.received_at) FILTER (WHERE e.status = 'pending'))::numeric, 1),
    'last_event_at', max(e.received_at),
    'accepted', count(*),
    'duplicates', coalesce(sum(e.duplicates), 0),
    'applied', count(*) FILTER (WHERE e.status = 'done'),
    'ignored', count(*) FILTER (WHERE e.status = 'ignored'),
    'failed', count(*) FILTER (WHERE e.status = 'failed'),
    -- A CTE used twice is evaluated once.
    'rejected', (SELECT r.v->'count' FROM r),
    'last_rejected_at', (SELECT to_timestamp((r.v->>'last_at_epoch')::float8) FROM r),
    'last_error', (SELECT x.last_error FROM notion_sync.webhook_events x WHERE x.last_error IS NOT NULL
                    ORDER BY x.received_at DESC LIMIT 1))
  FROM notion_sync.webhook_events e
$$;

-- p_target / p_columns: sync into a table of the caller's own instead of a notion_sync table
-- (README "Your own tables"). Keys of p_columns are the table's columns; values are Notion property
-- names, property ids or specials (@id, @title, @slug, @content, @url, @created_time,
-- @last_edited_time, @in_trash, @properties, @user_id). Rows are written with the privileges of
-- the registering role (session_user), which must be able to INSERT, UPDATE and SELECT the table.
CREATE FUNCTION notion_sync.register_database(
  p_user_id text, p_database_id text, p_database_name text,
  p_schedule text DEFAULT '*/15 * * * *', p_timezone text DEFAULT 'UTC',
  p_target regclass DEFAULT NULL, p_columns jsonb DEFAULT NULL, p_searchable boolean DEFAULT false)
RETURNS notion_sync.databases LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id text := notion_sync.normalize_notion_id(p_database_id);
  v_schedule text := btrim(coalesce(p_schedule, ''));
  v_next timestamptz;
  v_target text;
  v_row notion_sync.databases;
BEGIN
  PERFORM notion_sync._required(p_user_id, 'p_user_id'), notion_sync._required(p_database_name, 'p_database_name');
  IF lower(v_schedule) = 'manual' THEN
    v_schedule := 'manual';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_timezone) THEN
    RAISE EXCEPTION 'unknown time zone %: use an IANA name such as America/New_York', quote_literal(p_timezone)
      USING ERRCODE = '22023';
  END IF;
  IF (p_target IS NULL) <> (p_columns IS NULL) THEN
    RAISE EXCEPTION 'p_target and p_columns go together: a table of your own and its column map'
      USING ERRCODE = '22023';
  END IF;
  -- Validates the cron expression (22023 with the reason) and gives the first run.
  v_next := notion_sync.next_run(v_schedule, p_timezone);
  IF p_target IS NOT NULL THEN
    -- Columns, unique key on the @id column, and the privileges of the role that will write it.
    v_target := notion_sync._check_target(p_target::oid, p_columns, p_timezone, session_user);
  END IF;
  INSERT INTO notion_sync.databases AS d (user_id, database_id, database_name, target_table, schedule, timezone,
                                          next_run_at, target_columns, target_role, searchable)
  VALUES (p_user_id, v_id, btrim(p_database_name),
          coalesce(v_target, notion_sync.target_table_for(p_database_name)), v_schedule, p_timezone, v_next,
          p_columns, CASE WHEN p_target IS NOT NULL THEN session_user END, coalesce(p_searchable, false))
  ON CONFLICT (user_id, database_id) DO UPDATE
    SET database_name = EXCLUDED.database_name, target_table = EXCLUDED.target_table,
        schedule = EXCLUDED.schedule, timezone = EXCLUDED.timezone, next_run_at = EXCLUDED.next_run_at,
        target_columns = EXCLUDED.target_columns, target_role = EXCLUDED.target_role,
        searchable = EXCLUDED.searchable,
        -- A new table or map must reach every page: the next run reads them all.
        watermark = CASE WHEN d.target_table = EXCLUDED.target_table
                          AND d.target_columns IS NOT DISTINCT FROM EXCLUDED.target_columns
                          AND d.searchable = EXCLUDED.searchable
                          AND (d.target_columns IS NULL OR d.timezone = EXCLUDED.timezone)
                         THEN d.watermark END,
        updated_at = now()
  RETURNING * INTO v_row;
  IF NOT v_row.searchable THEN
    UPDATE notion_sync.mapped_pages SET doc = NULL
     WHERE user_id = v_row.user_id AND notion_database_id = v_row.database_id AND doc IS NOT NULL;
  END IF;
  RETURN v_row;
END
$$;

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

CREATE FUNCTION notion_sync.unregister_database(p_user_id text, p_database_id text)
RETURNS boolean LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  WITH d AS (
    DELETE FROM notion_sync.databases
     WHERE user_id = p_user_id AND database_id = notion_sync.normalize_notion_id(p_database_id)
    RETURNING 1),
  -- What notion_sync kept of a mapped table's pages; the application's rows stay.
  m AS (
    DELETE FROM notion_sync.mapped_pages
     WHERE user_id = p_user_id AND notion_database_id = notion_sync.normalize_notion_id(p_database_id))
  SELECT count(*) > 0 FROM d
$$;

CREATE FUNCTION notion_sync.sync_notion_database(
  p_user_id text, p_database_id text, p_database_name text DEFAULT NULL,
  p_mode text DEFAULT 'incremental', p_hours_back int DEFAULT NULL)
RETURNS notion_sync.sync_result LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT * FROM jsonb_populate_record(NULL::notion_sync.sync_result,
    notion_sync._sync_database(p_user_id, p_database_id, p_database_name, p_mode, p_hours_back, 'manual'))
$$;

CREATE FUNCTION notion_sync.sync_all_notion_databases(p_user_id text DEFAULT NULL, p_mode text DEFAULT 'incremental')
RETURNS SETOF notion_sync.sync_result LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.* FROM notion_sync._sync_all(p_user_id, p_mode, 'manual') AS j(v),
                  LATERAL jsonb_populate_record(NULL::notion_sync.sync_result, j.v) AS r
$$;

-- Rows of one database in its target table (not in trash), for sync_status. SECURITY DEFINER: the
-- admin role counts every user's rows (RLS would show it only its own).
CREATE FUNCTION notion_sync._row_count(p_target text, p_user_id text, p_database_id text)
RETURNS bigint LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n bigint;
BEGIN
  IF p_target NOT IN ('notion_characters_sync', 'notion_worlds_sync', 'notion_stories_sync',
                      'notion_chat_sessions_sync', 'notion_pages_sync') THEN
    -- A table of the user's own: its pages as notion_sync knows them.
    SELECT count(*) INTO n FROM notion_sync.mapped_pages
     WHERE user_id = p_user_id AND notion_database_id = p_database_id AND NOT in_trash;
    RETURN n;
  END IF;
  EXECUTE format('SELECT count(*) FROM notion_sync.%I WHERE user_id = $1 AND notion_database_id = $2 AND NOT in_trash',
                 p_target) INTO n USING p_user_id, p_database_id;
  RETURN n;
EXCEPTION WHEN undefined_table OR undefined_column THEN
  RETURN NULL;
END
$$;

-- Per registered database: schedule, next run, last run and its status, lag, last error, rows.
-- Syncs only: write-back's pushes are runs too (trigger 'writeback'), never a fresh copy.
CREATE VIEW notion_sync.sync_status AS
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
REVOKE ALL ON notion_sync.sync_status FROM PUBLIC;
GRANT SELECT ON notion_sync.sync_status TO notion_sync_admin;
REVOKE ALL ON FUNCTION notion_sync._row_count(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync._row_count(text, text, text) TO notion_sync_admin;

REVOKE ALL ON FUNCTION notion_sync._sync_database(text, text, text, text, int, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION notion_sync._sync_all(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION notion_sync._handle_webhook(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION notion_sync._webhook_rejected() FROM PUBLIC;
REVOKE ALL ON FUNCTION notion_sync._check_target(oid, jsonb, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION notion_sync.user_id_for_role(name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.user_id_for_role(name) TO PUBLIC;
DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'notion_sync.set_notion_token(text, text)',
    'notion_sync.set_webhook_secret(text, text)',
    'notion_sync.handle_webhook(text, text, text)',
    'notion_sync.webhook_health()',
    'notion_sync.register_database(text, text, text, text, text, regclass, jsonb, boolean)',
    'notion_sync.register_pages(text, text, text, text, int)',
    'notion_sync.unregister_database(text, text)',
    'notion_sync.sync_notion_database(text, text, text, text, int)',
    'notion_sync.sync_all_notion_databases(text, text)'] LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO notion_sync_admin', f);
  END LOOP;
END
$$;
GRANT USAGE ON SCHEMA notion_sync TO PUBLIC;
GRANT SELECT ON notion_sync.databases, notion_sync.sync_runs, notion_sync.sync_errors TO notion_sync_admin;
GRANT SELECT (id, user_id, type, entity_id, entity_type, parent_id, event_time, status, attempts, next_attempt_at,
              duplicates, received_at, processed_at, result, last_error)
  ON notion_sync.webhook_events TO notion_sync_admin;

-- A working URL of a file Notion hosts (0.2.0): the stored one while its expiry_time is more than
-- a minute away, else the page is read again (one request) and the fresh value stored. Callers
-- read their own user's files only (src/files.rs checks the calling role).
CREATE FUNCTION notion_sync.file_url(p_user_id text, p_page_id text, p_property text, p_index int DEFAULT 0)
RETURNS text LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT notion_sync._file_url(p_user_id, p_page_id, p_property, p_index) $$;
REVOKE ALL ON FUNCTION notion_sync._file_url(text, text, text, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.file_url(text, text, text, int) TO PUBLIC;

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

-- One column per Notion property over a database's sync table (0.2.0, README "Typed views").
CREATE FUNCTION notion_sync.create_typed_view(p_user_id text, p_database_id text, p_view text)
RETURNS text LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT notion_sync._create_typed_view(p_user_id, p_database_id, p_view) $$;
REVOKE ALL ON FUNCTION notion_sync._create_typed_view(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION notion_sync.create_typed_view(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.create_typed_view(text, text, text) TO notion_sync_admin;

-- Syncs running now, from shared memory (0.2.0, src/progress.rs): a SQL call's transaction shows
-- nothing until it ends, so this is how another session follows a long first sync.
CREATE VIEW notion_sync.sync_progress AS
  SELECT * FROM notion_sync._sync_progress();
REVOKE ALL ON FUNCTION notion_sync._sync_progress() FROM PUBLIC;
REVOKE ALL ON notion_sync.sync_progress FROM PUBLIC;
GRANT SELECT ON notion_sync.sync_progress TO notion_sync_admin;

-- One row per database the launcher serves (0.2.0, src/launcher.rs): its scheduler's pid and state,
-- from shared memory (no rows without shared_preload_libraries). Nothing secret: readable by all,
-- and so the function under it is left executable by PUBLIC.
CREATE VIEW notion_sync.schedulers AS
  SELECT * FROM notion_sync._schedulers();
GRANT SELECT ON notion_sync.schedulers TO PUBLIC;
