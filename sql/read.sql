-- Read path. SECURITY INVOKER on purpose: row-level security decides what a caller sees, so a role
-- can only read its own user's rows whatever p_user_id it passes. pg_trgm's schema is found at
-- install time, so every call stays schema-qualified.
DO $do$
DECLARE
  trgm text := (SELECT e.extnamespace::regnamespace::text FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_trgm');
BEGIN
  EXECUTE pg_catalog.format($f$
CREATE FUNCTION notion_sync.get_notion_character(p_user_id text, p_character_name text)
RETURNS TABLE (notion_page_id text, name text, description text, properties jsonb, url text, match_score real)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT c.notion_page_id, c.name, c.description, c.properties, c.url,
         (CASE
            WHEN p_character_name IS NULL THEN 1.0
            WHEN lower(c.name) = lower(p_character_name) THEN 1.0
            WHEN starts_with(lower(c.name), lower(p_character_name)) THEN 0.9
            WHEN strpos(lower(c.name), lower(p_character_name)) > 0 THEN 0.8
            ELSE 0.7 * %1$s.similarity(lower(c.name), lower(p_character_name))
          END)::real AS match_score
    FROM (SELECT * FROM notion_sync.notion_characters_sync x
           WHERE p_character_name IS NULL AND x.user_id = p_user_id AND NOT x.in_trash
          UNION ALL
          -- Two branches rather than "name IS NULL OR ...", and LIKE (wildcards in the name escaped)
          -- rather than strpos, so the trigram index serves the match.
          SELECT * FROM notion_sync.notion_characters_sync x
           WHERE x.user_id = p_user_id AND NOT x.in_trash
             AND (lower(x.name) OPERATOR(%1$s.%%) lower(p_character_name)
                  OR lower(x.name) LIKE '%%' || replace(replace(replace(lower(p_character_name), '\', '\\'),
                                                                 '%%', '\%%'), '_', '\_') || '%%')) c
   ORDER BY match_score DESC, c.name
$$ $f$, trgm);
END
$do$;

CREATE FUNCTION notion_sync.search_notion_content(p_user_id text, p_search_query text, p_limit int DEFAULT 20)
RETURNS TABLE (source_table text, notion_page_id text, title text, content text, relevance_score real, url text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH q AS (SELECT websearch_to_tsquery('pg_catalog.english'::regconfig, p_search_query) AS q),
  hits AS (
    SELECT * FROM (
      SELECT 'notion_characters_sync'::text AS source_table, t.notion_page_id, t.name AS title,
             concat_ws(E'\n', t.description, t.body) AS doc, ts_rank(t.search_vector, q.q) AS score, t.url
        FROM notion_sync.notion_characters_sync t, q
       WHERE t.user_id = p_user_id AND NOT t.in_trash AND t.search_vector @@ q.q
      UNION ALL
      SELECT 'notion_worlds_sync', t.notion_page_id, t.name, concat_ws(E'\n', t.description, t.body),
             ts_rank(t.search_vector, q.q), t.url
        FROM notion_sync.notion_worlds_sync t, q
       WHERE t.user_id = p_user_id AND NOT t.in_trash AND t.search_vector @@ q.q
      UNION ALL
      SELECT 'notion_stories_sync', t.notion_page_id, t.title, concat_ws(E'\n', t.content, t.body),
             ts_rank(t.search_vector, q.q), t.url
        FROM notion_sync.notion_stories_sync t, q
       WHERE t.user_id = p_user_id AND NOT t.in_trash AND t.search_vector @@ q.q
      UNION ALL
      SELECT 'notion_chat_sessions_sync', t.notion_page_id, t.title, concat_ws(E'\n', t.transcript, t.body),
             ts_rank(t.search_vector, q.q), t.url
        FROM notion_sync.notion_chat_sessions_sync t, q
       WHERE t.user_id = p_user_id AND NOT t.in_trash AND t.search_vector @@ q.q
      UNION ALL
      SELECT 'notion_pages_sync', t.notion_page_id, t.title, concat_ws(E'\n', t.description, t.body),
             ts_rank(t.search_vector, q.q), t.url
        FROM notion_sync.notion_pages_sync t, q
       WHERE t.user_id = p_user_id AND NOT t.in_trash AND t.search_vector @@ q.q
      UNION ALL
      -- Tables of the user's own registered as searchable (their vector is NULL otherwise).
      SELECT t.target_table, t.notion_page_id, t.title, t.doc, ts_rank(t.search_vector, q.q), t.url
        FROM notion_sync.mapped_pages t, q
       WHERE t.user_id = p_user_id AND NOT t.in_trash AND t.search_vector @@ q.q
    ) all_hits
    ORDER BY score DESC, title
    LIMIT greatest(coalesce(p_limit, 20), 0))
  -- Snippets only for the rows returned.
  SELECT h.source_table, h.notion_page_id, h.title,
         ts_headline('pg_catalog.english'::regconfig, coalesce(nullif(h.doc, ''), h.title), q.q,
                     'MaxWords=30, MinWords=10, StartSel=**, StopSel=**'),
         h.score::real, h.url
    FROM hits h, q
   ORDER BY h.score DESC, h.title
$$;

-- Totals per table (pages, with content, with an email property filled, last updated; tables of the
-- user's own too, keyed by their qualified name), the five most
-- recently updated pages and the five most recent runs. SECURITY DEFINER (granted to
-- notion_sync_admin only): an admin sees every user's totals, which RLS would hide.
CREATE FUNCTION notion_sync.status(p_user_id text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t record;
  tables jsonb := '{}'::jsonb;
  recent jsonb := '[]'::jsonb;
  one jsonb;
BEGIN
  FOR t IN SELECT * FROM (VALUES ('notion_characters_sync', 'name'), ('notion_worlds_sync', 'name'),
                                 ('notion_stories_sync', 'title'), ('notion_chat_sessions_sync', 'title'),
                                 ('notion_pages_sync', 'title')) v(tbl, title) LOOP
    EXECUTE format($q$
      SELECT jsonb_build_object(
        'total', count(*),
        'with_content', count(*) FILTER (WHERE coalesce(body, '') <> ''),
        'with_email', count(*) FILTER (WHERE EXISTS (
            SELECT 1 FROM jsonb_each(properties) p
             WHERE p.value->>'type' = 'email' AND coalesce(p.value->>'value', '') <> '')),
        'last_updated', max(updated_at))
        FROM notion_sync.%1$I WHERE ($1::text IS NULL OR user_id = $1) AND NOT in_trash$q$, t.tbl)
      INTO one USING p_user_id;
    tables := tables || jsonb_build_object(t.tbl, one);
    EXECUTE format($q$
      SELECT coalesce(jsonb_agg(x), '[]'::jsonb) FROM (
        SELECT %2$L AS table, notion_page_id, %3$I AS title, updated_at
          FROM notion_sync.%1$I WHERE ($1::text IS NULL OR user_id = $1)
         ORDER BY updated_at DESC LIMIT 5) x$q$, t.tbl, t.tbl, t.title)
      INTO one USING p_user_id;
    recent := recent || one;
  END LOOP;
  -- Tables of the user's own (column maps), from what notion_sync keeps of their pages.
  SELECT tables || coalesce(jsonb_object_agg(m.target_table, m.v), '{}'::jsonb) INTO tables FROM (
    SELECT target_table, jsonb_build_object(
             'total', count(*) FILTER (WHERE NOT in_trash),
             'with_content', count(*) FILTER (WHERE has_content AND NOT in_trash),
             'with_email', count(*) FILTER (WHERE has_email AND NOT in_trash),
             'in_trash', count(*) FILTER (WHERE in_trash),
             'last_updated', max(updated_at),
             'mapped', true) AS v
      FROM notion_sync.mapped_pages WHERE p_user_id IS NULL OR user_id = p_user_id
     GROUP BY target_table) m;
  SELECT recent || coalesce(jsonb_agg(x), '[]'::jsonb) INTO recent FROM (
    SELECT target_table AS table, notion_page_id, title, updated_at FROM notion_sync.mapped_pages
     WHERE p_user_id IS NULL OR user_id = p_user_id
     ORDER BY updated_at DESC LIMIT 5) x;
  RETURN jsonb_build_object(
    'tables', tables,
    'recent_updates', (SELECT coalesce(jsonb_agg(r ORDER BY r->>'updated_at' DESC), '[]'::jsonb)
                         FROM (SELECT r FROM jsonb_array_elements(recent) r
                                ORDER BY r->>'updated_at' DESC LIMIT 5) x),
    'last_runs', (SELECT coalesce(jsonb_agg(r ORDER BY r.run_id DESC), '[]'::jsonb) FROM (
        SELECT run_id, database_name, trigger, mode, status, total, created, updated, skipped, deleted, errors,
               duration_ms, finished_at
          FROM notion_sync.sync_runs WHERE p_user_id IS NULL OR user_id = p_user_id
         ORDER BY run_id DESC LIMIT 5) r));
END
$$;

GRANT EXECUTE ON FUNCTION notion_sync.get_notion_character(text, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.search_notion_content(text, text, int) TO PUBLIC;
REVOKE ALL ON FUNCTION notion_sync.status(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.status(text) TO notion_sync_admin;
