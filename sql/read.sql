-- Read path. SECURITY INVOKER on purpose: row-level security decides what a caller sees, so a role
-- can only read its own user's rows whatever p_user_id it passes. pg_trgm's schema is found at
-- install time, so every call stays schema-qualified.
DO $do$
DECLARE
  trgm text := (SELECT e.extnamespace::regnamespace::text FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_trgm');
BEGIN
  EXECUTE pg_catalog.replace($f$
-- Tiers, best first: exact (1.0), prefix (0.9), substring (0.8), then typo-tolerant (0.7 x trigram
-- similarity, only when the three before found nothing); ties by lowercased name. A tier runs only
-- while fewer than p_limit rows were found,
-- since no row of a later tier can outrank one of an earlier tier: a lookup that has its answer in
-- the btree never pays for the trigram index. Each tier is planned with its values as constants
-- (EXECUTE), which is what lets the btree serve the prefix LIKE. p_limit NULL returns every match.
CREATE FUNCTION notion_sync.get_notion_character(p_user_id text, p_character_name text, p_limit int DEFAULT 20)
RETURNS TABLE (notion_page_id text, name text, description text, properties jsonb, url text, match_score real)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  q text := lower(p_character_name);
  -- LIKE wildcards in the name are matched literally.
  esc text := replace(replace(replace(q, '\', '\\'), '%', '\%'), '_', '\_');
  name_c constant text := 'lower(c.name) COLLATE pg_catalog."C"';
  tier record;
  got bigint;
  left_ bigint := p_limit;
BEGIN
  IF p_limit < 0 THEN
    RAISE EXCEPTION 'p_limit must be 0 or more, got %', p_limit USING ERRCODE = '2201W';
  END IF;
  FOR tier IN
    SELECT * FROM (VALUES
      (0, '1.0', 'true'),
      (1, '1.0', format('%s = %L', name_c, q)),
      (2, '0.9', format('%s LIKE %L AND %s <> %L', name_c, esc || '%', name_c, q)),
      (3, '0.8', format('lower(c.name) LIKE %L AND NOT starts_with(lower(c.name), %L)', '%' || esc || '%', q)),
      (4, format('0.7 * @trgm@.similarity(lower(c.name), %L)', q),
          format('lower(c.name) OPERATOR(@trgm@.%%) %L AND strpos(lower(c.name), %L) = 0', q, q))
    ) t(n, score, cond)
    WHERE (n = 0) = (p_character_name IS NULL)
    ORDER BY n
  LOOP
    EXIT WHEN left_ <= 0;
    -- The typo tier only when nothing better matched (or every match was asked for): a name that
    -- matches exactly, by prefix or inside another wants those, not look-alikes, and the trigram
    -- similarity scan was most of a lookup's time (issue 21: p50 2.6 -> 1.1 ms at 100k characters).
    EXIT WHEN tier.n = 4 AND p_limit IS NOT NULL AND left_ < p_limit;
    RETURN QUERY EXECUTE format(
      'SELECT c.notion_page_id, c.name, c.description, c.properties, c.url, (%s)::real AS s
         FROM notion_sync.notion_characters_sync c
        WHERE c.user_id = %L AND NOT c.in_trash AND %s
        ORDER BY s DESC, %s, c.name LIMIT %s',
      tier.score, p_user_id, tier.cond, name_c, coalesce(left_::text, 'ALL'));
    GET DIAGNOSTICS got = ROW_COUNT;
    left_ := left_ - got;
  END LOOP;
END
$$ $f$, '@trgm@', trgm);
END
$do$;

-- One branch per table, each ranking its own matches; the best p_limit over all get a snippet.
-- Planned with the user and the query as values (EXECUTE ... USING): the planner then sees how many
-- rows the words match, and reads the text index alone for a selective query rather than ANDing it
-- with a bitmap of every row of the user. Parallel workers only for big match sets: starting them
-- costs a few milliseconds, more than a selective search takes.
CREATE FUNCTION notion_sync.search_notion_content(p_user_id text, p_search_query text, p_limit int DEFAULT 20)
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

GRANT EXECUTE ON FUNCTION notion_sync.get_notion_character(text, text, int) TO PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.search_notion_content(text, text, int) TO PUBLIC;
REVOKE ALL ON FUNCTION notion_sync.status(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notion_sync.status(text) TO notion_sync_admin;
