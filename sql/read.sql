-- Read path. SECURITY INVOKER on purpose: row-level security decides what a caller sees, so a role
-- can only read its own user's rows whatever p_user_id it passes. pg_trgm's schema is found at
-- install time, so every call stays schema-qualified.
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
CREATE FUNCTION notion_sync.get_notion_character(p_user_id text, p_character_name text, p_limit int DEFAULT 20)
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
