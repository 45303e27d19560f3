-- The public API (design.md). SECURITY DEFINER functions pin search_path and are granted to
-- notion_sync_admin only; internal functions are revoked from PUBLIC.

CREATE FUNCTION notion_sync.set_notion_token(p_user_id text, p_token text)
RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_user_id IS NULL OR btrim(p_user_id) = '' THEN
    RAISE EXCEPTION 'p_user_id must not be empty' USING ERRCODE = '22023';
  END IF;
  IF p_token IS NULL OR btrim(p_token) = '' THEN
    RAISE EXCEPTION 'p_token must not be empty' USING ERRCODE = '22023';
  END IF;
  INSERT INTO notion_sync.tokens (user_id, token) VALUES (p_user_id, btrim(p_token))
  ON CONFLICT (user_id) DO UPDATE SET token = EXCLUDED.token, updated_at = now();
END
$$;

CREATE FUNCTION notion_sync.register_database(
  p_user_id text, p_database_id text, p_database_name text,
  p_schedule text DEFAULT '*/15 * * * *', p_timezone text DEFAULT 'UTC')
RETURNS notion_sync.databases LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id text := notion_sync.normalize_notion_id(p_database_id);
  v_schedule text := btrim(coalesce(p_schedule, ''));
  v_fields int;
  v_row notion_sync.databases;
BEGIN
  IF p_user_id IS NULL OR btrim(p_user_id) = '' THEN
    RAISE EXCEPTION 'p_user_id must not be empty' USING ERRCODE = '22023';
  END IF;
  IF p_database_name IS NULL OR btrim(p_database_name) = '' THEN
    RAISE EXCEPTION 'p_database_name must not be empty' USING ERRCODE = '22023';
  END IF;
  IF lower(v_schedule) = 'manual' THEN
    v_schedule := 'manual';
  ELSE
    v_fields := array_length(regexp_split_to_array(v_schedule, '\s+'), 1);
    IF v_schedule = '' OR v_fields NOT IN (5, 6, 7) OR v_schedule !~ '^[0-9*/,\-A-Za-z?\s]+$' THEN
      RAISE EXCEPTION 'invalid schedule %: use a cron expression with 5 fields (or 6 with seconds first) or ''manual''', quote_literal(p_schedule)
        USING ERRCODE = '22023';
    END IF;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_timezone) THEN
    RAISE EXCEPTION 'unknown time zone %: use an IANA name such as America/New_York', quote_literal(p_timezone)
      USING ERRCODE = '22023';
  END IF;
  INSERT INTO notion_sync.databases AS d (user_id, database_id, database_name, target_table, schedule, timezone)
  VALUES (p_user_id, v_id, btrim(p_database_name), notion_sync.target_table_for(p_database_name), v_schedule, p_timezone)
  ON CONFLICT (user_id, database_id) DO UPDATE
    SET database_name = EXCLUDED.database_name, target_table = EXCLUDED.target_table,
        schedule = EXCLUDED.schedule, timezone = EXCLUDED.timezone, updated_at = now()
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
    RETURNING 1)
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

REVOKE ALL ON FUNCTION notion_sync._sync_database(text, text, text, text, int, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION notion_sync._sync_all(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION notion_sync.user_id_for_role(name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.user_id_for_role(name) TO PUBLIC;
DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'notion_sync.set_notion_token(text, text)',
    'notion_sync.register_database(text, text, text, text, text)',
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
