//! `cargo pgrx test` suite: SQL functions against the fake Notion (tests/fake_notion), which the
//! test command starts on 127.0.0.1:$NOTION_SYNC_FAKE_PORT (17801 by default) before the run.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::{json, Value};

    const SAMPLE: &str = include_str!("../tests/workspace/sample.json");
    const CHARACTERS: &str = "a1b2c3d4-0000-4000-8000-0000000000c1";
    const STORIES: &str = "a1b2c3d4-0000-4000-8000-0000000000c3";
    const READING: &str = "a1b2c3d4-0000-4000-8000-00000000c0de";
    const READING_DS: &str = "d5000000-0000-4000-8000-00000000c0de";

    fn fake() -> String {
        let port = std::env::var("NOTION_SYNC_FAKE_PORT").unwrap_or_else(|_| "17801".into());
        format!("http://127.0.0.1:{port}")
    }

    fn admin(method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/admin/{path}", fake());
        let resp = ureq::request(method, &url)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
            .unwrap_or_else(|e| panic!("fake Notion at {url}: {e} (is it running?)"));
        serde_json::from_str(&resp.into_string().unwrap()).unwrap()
    }

    fn requests() -> Vec<Value> {
        let r = ureq::get(&format!("{}/admin/requests", fake()))
            .call()
            .unwrap();
        let v: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
        v["requests"].as_array().cloned().unwrap_or_default()
    }

    /// Fresh fake workspace, settings pointed at it, and a token for user `alice`.
    fn setup() {
        admin("POST", "reset", serde_json::from_str(SAMPLE).unwrap());
        admin("DELETE", "requests", json!({}));
        Spi::run(&format!("SET notion_sync.api_url = '{}/v1'", fake())).unwrap();
        Spi::run("SET notion_sync.requests_per_second = 0").unwrap();
        Spi::run("SET notion_sync.max_retries = 2").unwrap();
        Spi::run("SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')").unwrap();
    }

    fn sync(db: &str, name: Option<&str>, mode: &str) -> Value {
        let name = name
            .map(|n| format!("'{n}'"))
            .unwrap_or_else(|| "NULL".into());
        Spi::get_one::<pgrx::JsonB>(&format!(
            "SELECT to_jsonb(r) FROM notion_sync.sync_notion_database('alice', '{db}', {name}, '{mode}') r"
        ))
        .unwrap()
        .unwrap()
        .0
    }

    fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).unwrap().unwrap_or(-1)
    }

    #[pg_test]
    fn full_sync_fills_the_characters_table() {
        setup();
        let r = sync(CHARACTERS, Some("Characters"), "full");
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["total"], 4);
        assert_eq!(r["created"], 4);
        assert_eq!(
            count(
                "SELECT count(*) FROM notion_sync.notion_characters_sync WHERE user_id = 'alice'"
            ),
            4
        );
        let row = Spi::get_one::<pgrx::JsonB>(
            "SELECT jsonb_build_object('name', name, 'description', description, 'properties', properties, 'body', body, 'url', url)
               FROM notion_sync.notion_characters_sync WHERE notion_page_id = 'c0000000-0000-4000-8000-000000000001'",
        )
        .unwrap()
        .unwrap()
        .0;
        assert_eq!(row["name"], "Aria Stormwind");
        assert_eq!(
            row["description"],
            "A young sky-sailor who can hear the wind speak."
        );
        let p = &row["properties"];
        assert_eq!(p["Role"]["value"], "Hero");
        assert_eq!(p["Role"]["type"], "select");
        assert_eq!(p["Traits"]["value"], json!(["brave", "curious"]));
        assert_eq!(p["Age"]["value"], 19);
        assert_eq!(p["Active"]["value"], true);
        assert_eq!(
            p["World"]["value"],
            json!(["e0000000-0000-4000-8000-000000000001"])
        );
        assert_eq!(p["Character ID"]["value"], "CHR-1");
        assert_eq!(p["Creator"]["value"][0]["name"], "Ada Writer");
        assert!(p["Portrait"]["value"][0]["url"]
            .as_str()
            .unwrap()
            .ends_with("aria.png"));
        let body = row["body"].as_str().unwrap();
        assert!(
            body.contains("## Backstory") && body.contains("- Carries her mother's brass compass"),
            "{body}"
        );
        assert!(row["url"].as_str().unwrap().starts_with("https://"));
        assert_eq!(count("SELECT count(*) FROM notion_sync.sync_runs WHERE status = 'succeeded' AND total = 4"), 1);
    }

    #[pg_test]
    fn unchanged_pages_are_skipped_without_reading_blocks() {
        setup();
        sync(CHARACTERS, Some("Characters"), "full");
        admin("DELETE", "requests", json!({}));
        let r = sync(CHARACTERS, None, "full");
        assert_eq!(r["skipped"], 4, "{r}");
        assert_eq!(r["updated"], 0);
        let block_reads = requests()
            .iter()
            .filter(|q| q["path"].as_str().unwrap().contains("/blocks/"))
            .count();
        assert_eq!(block_reads, 0);
    }

    #[pg_test]
    fn incremental_reads_only_what_changed() {
        setup();
        sync(CHARACTERS, Some("Characters"), "full");
        admin(
            "PATCH",
            "pages/c0000000-0000-4000-8000-000000000004",
            json!({"properties": {"Description": "A lantern-moth who learned to read."}}),
        );
        admin("DELETE", "requests", json!({}));
        let r = sync(CHARACTERS, None, "incremental");
        // The watermark overlap re-reads pages of the last minutes (skipped: hash unchanged).
        assert_eq!(r["updated"], 1, "{r}");
        assert_eq!(r["created"], 0);
        assert_eq!(
            r["total"].as_i64().unwrap() - r["skipped"].as_i64().unwrap(),
            1
        );
        assert_eq!(
            Spi::get_one::<String>("SELECT description FROM notion_sync.notion_characters_sync WHERE notion_page_id = 'c0000000-0000-4000-8000-000000000004'")
                .unwrap()
                .unwrap(),
            "A lantern-moth who learned to read."
        );
        let queries: Vec<Value> = requests()
            .into_iter()
            .filter(|q| q["path"].as_str().unwrap().ends_with("/query"))
            .collect();
        assert_eq!(queries.len(), 1);
    }

    #[pg_test]
    fn pages_sharing_a_minute_across_the_boundary_are_not_missed() {
        setup();
        // Both pages show the same minute: one is synced, the other edited later in that minute.
        let minute = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:00.000Z")
            .to_string();
        let late = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:59.000Z")
            .to_string();
        admin(
            "PATCH",
            "pages/c0000000-0000-4000-8000-000000000001",
            json!({"properties": {"Age": 20}, "last_edited_time": minute}),
        );
        sync(CHARACTERS, Some("Characters"), "full");
        admin(
            "PATCH",
            "pages/c0000000-0000-4000-8000-000000000002",
            json!({"properties": {"Age": 72}, "last_edited_time": late}),
        );
        admin(
            "PATCH",
            "pages/c0000000-0000-4000-8000-000000000001",
            json!({"properties": {"Age": 21}, "last_edited_time": late}),
        );
        let r = sync(CHARACTERS, None, "incremental");
        assert!(r["updated"].as_i64().unwrap() >= 2, "{r}");
        assert_eq!(count("SELECT (properties->'Age'->>'value')::int FROM notion_sync.notion_characters_sync WHERE notion_page_id = 'c0000000-0000-4000-8000-000000000002'"), 72);
        assert_eq!(count("SELECT (properties->'Age'->>'value')::int FROM notion_sync.notion_characters_sync WHERE notion_page_id = 'c0000000-0000-4000-8000-000000000001'"), 21);
    }

    #[pg_test]
    fn relation_with_forty_items_is_complete() {
        setup();
        let ids: Vec<String> = (0..40)
            .map(|i| format!("f0000000-0000-4000-8000-{:012}", i))
            .collect();
        admin(
            "PATCH",
            "pages/c0000000-0000-4000-8000-000000000003",
            json!({"properties": {"World": ids}}),
        );
        let r = sync(CHARACTERS, Some("Characters"), "full");
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(
            count("SELECT jsonb_array_length(properties->'World'->'value') FROM notion_sync.notion_characters_sync WHERE notion_page_id = 'c0000000-0000-4000-8000-000000000003'"),
            40
        );
    }

    #[pg_test]
    fn trashed_pages_are_marked_only_by_a_complete_full_sync() {
        setup();
        let r = sync(READING, Some("Reading List"), "full");
        assert_eq!(
            r["total"], 2,
            "the trashed seed page is never returned: {r}"
        );
        admin(
            "PATCH",
            "pages/b0000000-0000-4000-8000-000000000002",
            json!({"in_trash": true}),
        );
        let r = sync(READING, None, "incremental");
        assert_eq!(r["deleted"], 0);
        let r = sync(READING, None, "full");
        assert_eq!(r["deleted"], 1, "{r}");
        assert_eq!(count("SELECT count(*) FROM notion_sync.notion_pages_sync WHERE in_trash AND notion_page_id = 'b0000000-0000-4000-8000-000000000002'"), 1);
        // Restored in Notion: the next sync brings it back.
        admin(
            "PATCH",
            "pages/b0000000-0000-4000-8000-000000000002",
            json!({"in_trash": false}),
        );
        let r = sync(READING, None, "full");
        assert_eq!(r["updated"], 1, "{r}");
        assert_eq!(
            count("SELECT count(*) FROM notion_sync.notion_pages_sync WHERE in_trash"),
            0
        );
    }

    #[pg_test]
    fn capped_queries_are_read_in_created_time_windows() {
        setup();
        admin(
            "POST",
            &format!("data_sources/{READING_DS}/generate"),
            json!({"count": 23, "created_time": "2026-03-01T00:00:00Z", "step_ms": 60000}),
        );
        admin("POST", "config", json!({"query_cap": 5}));
        let r = sync(READING, Some("Reading List"), "full");
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["total"], 25);
        assert_eq!(count("SELECT count(*) FROM notion_sync.notion_pages_sync WHERE database_name = 'Reading List'"), 25);
    }

    #[pg_test]
    fn a_cap_that_cannot_be_resolved_never_marks_deletions() {
        setup();
        sync(READING, Some("Reading List"), "full");
        // 8 pages in one created minute with a cap of 5: the scan cannot finish.
        admin(
            "POST",
            &format!("data_sources/{READING_DS}/generate"),
            json!({"count": 8, "created_time": "2026-03-01T00:00:00Z", "step_ms": 1000}),
        );
        admin("POST", "config", json!({"query_cap": 5}));
        admin(
            "PATCH",
            "pages/b0000000-0000-4000-8000-000000000001",
            json!({"in_trash": true}),
        );
        let r = sync(READING, None, "full");
        assert_eq!(r["status"], "partial", "{r}");
        assert_eq!(r["deleted"], 0);
    }

    #[pg_test]
    fn a_malformed_page_is_recorded_and_skipped() {
        setup();
        admin(
            "PATCH",
            "pages/c0000000-0000-4000-8000-000000000002",
            json!({"properties": {"Age": {"raw": {"id": "x", "type": "number", "number": "old"}}}}),
        );
        let r = sync(CHARACTERS, Some("Characters"), "full");
        assert_eq!(r["status"], "partial", "{r}");
        assert_eq!(r["created"], 3);
        assert_eq!(
            r["errors"][0]["page_id"],
            "c0000000-0000-4000-8000-000000000002"
        );
        assert_eq!(count("SELECT count(*) FROM notion_sync.sync_errors WHERE notion_page_id = 'c0000000-0000-4000-8000-000000000002'"), 1);
    }

    #[pg_test]
    fn stories_carry_nested_block_content() {
        setup();
        Spi::run("SET notion_sync.content_depth = 3").unwrap();
        let r = sync(STORIES, Some("Stories"), "full");
        assert_eq!(r["status"], "succeeded", "{r}");
        let body = Spi::get_one::<String>("SELECT body FROM notion_sync.notion_stories_sync WHERE notion_page_id = '50000000-0000-4000-8000-000000000001'")
            .unwrap()
            .unwrap();
        for needle in [
            "# Chapter One: Windfall",
            "Foreshadow the lighthouse",
            "[ ] Check the compass lore",
            "Third level: the compass points",
            "Place | Danger",
            "Deleted scenes",
            "compass.point",
        ] {
            assert!(body.contains(needle), "missing {needle:?} in {body}");
        }
        assert!(
            !body.contains("Pip was originally"),
            "child page content is not inlined"
        );
        let order = body.find("Chapter One").unwrap() < body.find("Orin lights the lamp").unwrap();
        assert!(order);
        Spi::run("SET notion_sync.content_depth = 1").unwrap();
        admin(
            "PATCH",
            "pages/50000000-0000-4000-8000-000000000001",
            json!({"properties": {"Stage": "Published"}}),
        );
        sync(STORIES, None, "incremental");
        let body = Spi::get_one::<String>("SELECT body FROM notion_sync.notion_stories_sync WHERE notion_page_id = '50000000-0000-4000-8000-000000000001'")
            .unwrap()
            .unwrap();
        assert!(!body.contains("Third level"));
    }

    #[pg_test]
    fn the_2022_api_version_works_too() {
        setup();
        Spi::run("SET notion_sync.notion_version = '2022-06-28'").unwrap();
        let r = sync(CHARACTERS, Some("Characters"), "full");
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["created"], 4);
        assert!(requests()
            .iter()
            .any(|q| q["path"] == format!("/v1/databases/{CHARACTERS}/query")));
    }

    #[pg_test]
    fn sync_all_runs_every_registered_database() {
        setup();
        Spi::run(&format!(
            "SELECT notion_sync.register_database('alice', '{CHARACTERS}', 'Characters')"
        ))
        .unwrap();
        Spi::run(&format!(
            "SELECT notion_sync.register_database('alice', '{}', 'Reading List', 'manual')",
            READING.replace('-', "")
        ))
        .unwrap();
        let n = count("SELECT count(*) FROM notion_sync.sync_all_notion_databases('alice', 'full') WHERE status = 'succeeded'");
        assert_eq!(n, 2);
        assert_eq!(count("SELECT count(*) FROM notion_sync.notion_pages_sync WHERE database_name = 'Reading List'"), 2);
    }

    #[pg_test]
    fn a_failing_database_does_not_stop_the_others() {
        setup();
        Spi::run("SELECT notion_sync.set_notion_token('bob', 'ntn_demo_limited')").unwrap();
        Spi::run(&format!(
            "SELECT notion_sync.register_database('bob', '{CHARACTERS}', 'Characters')"
        ))
        .unwrap();
        Spi::run(&format!(
            "SELECT notion_sync.register_database('bob', '{READING}', 'Reading List')"
        ))
        .unwrap();
        let failed = Spi::get_one::<String>("SELECT errors->0->>'error' FROM notion_sync.sync_all_notion_databases('bob', 'full') WHERE status = 'failed'")
            .unwrap()
            .unwrap();
        assert!(
            failed.contains("not shared with the integration"),
            "{failed}"
        );
        assert_eq!(
            count("SELECT count(*) FROM notion_sync.notion_pages_sync WHERE user_id = 'bob'"),
            2
        );
        assert_eq!(count("SELECT count(*) FROM notion_sync.sync_runs WHERE user_id = 'bob' AND status = 'failed'"), 1);
    }

    #[pg_test]
    fn the_sync_tables_mark_data_source_pages_with_their_database() {
        setup();
        sync(CHARACTERS, Some("Characters"), "full");
        assert_eq!(count(&format!("SELECT count(*) FROM notion_sync.notion_characters_sync WHERE notion_database_id = '{CHARACTERS}'")), 4);
    }

    #[pg_test(
        error = "no Notion token for user nobody: set it with notion_sync.set_notion_token(user_id, token)"
    )]
    fn a_missing_token_says_what_to_do() {
        setup();
        Spi::run(&format!(
            "SELECT notion_sync.sync_notion_database('nobody', '{CHARACTERS}')"
        ))
        .unwrap();
    }

    #[pg_test(
        error = "Notion rejected the token for user alice: set it with notion_sync.set_notion_token(user_id, token)"
    )]
    fn a_bad_token_says_what_to_do() {
        setup();
        Spi::run("SELECT notion_sync.set_notion_token('alice', 'ntn_wrong')").unwrap();
        Spi::run(&format!(
            "SELECT notion_sync.sync_notion_database('alice', '{CHARACTERS}')"
        ))
        .unwrap();
    }

    #[pg_test(error = "unknown sync mode \"sideways\": use 'full' or 'incremental'")]
    fn an_unknown_mode_is_rejected() {
        setup();
        Spi::run(&format!(
            "SELECT notion_sync.sync_notion_database('alice', '{CHARACTERS}', NULL, 'sideways')"
        ))
        .unwrap();
    }
    #[pg_test]
    fn character_lookup_exact_prefix_substring_and_typo() {
        setup();
        sync(CHARACTERS, Some("Characters"), "full");
        let first = |q: &str| {
            Spi::get_two::<String, f32>(&format!(
                "SELECT name, match_score FROM notion_sync.get_notion_character('alice', '{q}') LIMIT 1"
            ))
            .unwrap()
        };
        assert_eq!(
            first("aria stormwind"),
            (Some("Aria Stormwind".into()), Some(1.0))
        );
        assert_eq!(first("Master").0.as_deref(), Some("Master Orin"));
        assert_eq!(first("Hollow").0.as_deref(), Some("Vex the Hollow"));
        assert_eq!(first("Aria Stromwind").0.as_deref(), Some("Aria Stormwind"));
        assert_eq!(
            count("SELECT count(*) FROM notion_sync.get_notion_character('alice', NULL)"),
            4
        );
        assert_eq!(
            count("SELECT count(*) FROM notion_sync.get_notion_character('bob', NULL)"),
            0
        );
    }

    /// Names written directly: the tiers, their order, p_limit and literal wildcards.
    fn lookup(name: &str, limit: &str) -> String {
        Spi::get_one::<String>(&format!(
            "SELECT string_agg(name || ' ' || match_score, ', ' ORDER BY n) \
               FROM notion_sync.get_notion_character('alice', {name}, {limit}) WITH ORDINALITY r(id, name, d, p, u, match_score, n)"
        ))
        .unwrap()
        .unwrap_or_default()
    }

    #[pg_test]
    fn character_lookup_tiers_and_limit() {
        Spi::run(
            "INSERT INTO notion_sync.notion_characters_sync (user_id, notion_database_id, notion_page_id, name)
             SELECT 'alice', 'db', 'p' || n, n FROM unnest(ARRAY['Maria', 'Ariadne', 'Aria Stormwind', 'ARIA',
                                                                  '100% Bot', 'Zed']) n
             UNION ALL SELECT 'bob', 'db', 'b1', 'Aria'",
        )
        .unwrap();
        // Exact, then prefix (by lowercased name), then substring; Zed matches nothing.
        assert_eq!(
            lookup("'aria'", "20"),
            "ARIA 1, Aria Stormwind 0.9, Ariadne 0.9, Maria 0.8"
        );
        // A limit the earlier tiers fill ends the lookup there.
        assert_eq!(lookup("'aria'", "2"), "ARIA 1, Aria Stormwind 0.9");
        assert_eq!(lookup("'aria'", "1"), "ARIA 1");
        assert_eq!(lookup("'aria'", "0"), "");
        // LIKE wildcards in the name are plain characters.
        assert_eq!(lookup("'%'", "20"), "100% Bot 0.8");
        assert_eq!(lookup("'_ed'", "20"), "");
        // A NULL name lists the user's characters by name; a NULL limit returns them all.
        assert_eq!(lookup("NULL", "3"), "100% Bot 1, ARIA 1, Aria Stormwind 1");
        assert_eq!(
            count("SELECT count(*) FROM notion_sync.get_notion_character('alice', NULL, NULL)"),
            6
        );
        // The two-argument call of the contract still works, with the default limit of 20.
        assert_eq!(
            count("SELECT count(*) FROM notion_sync.get_notion_character('alice', 'ari')"),
            4
        );
    }

    #[pg_test(error = "p_limit must be 0 or more, got -1")]
    fn a_negative_lookup_limit_is_rejected() {
        Spi::run("SELECT * FROM notion_sync.get_notion_character('alice', 'aria', -1)").unwrap();
    }

    #[pg_test]
    fn search_ranks_titles_above_bodies_across_tables() {
        setup();
        sync(CHARACTERS, Some("Characters"), "full");
        sync(STORIES, Some("Stories"), "full");
        let top = Spi::get_two::<String, String>(
            "SELECT source_table, title FROM notion_sync.search_notion_content('alice', 'compass', 10) LIMIT 1",
        )
        .unwrap();
        assert_eq!(top.1.as_deref(), Some("The Compass That Lied"));
        assert_eq!(count("SELECT count(DISTINCT source_table) FROM notion_sync.search_notion_content('alice', 'compass')"), 2);
        assert_eq!(count("SELECT count(*) FROM notion_sync.search_notion_content('alice', '\"lantern-moth\" -storm')"), 1);
        let snippet = Spi::get_one::<String>(
            "SELECT content FROM notion_sync.search_notion_content('alice', 'lighthouse') LIMIT 1",
        )
        .unwrap()
        .unwrap();
        assert!(snippet.contains("**lighthouse**"), "{snippet}");
    }

    const CLIENTS: &str = "a1b2c3d4-0000-4000-8000-0000000000c5";

    #[pg_test]
    fn a_mapped_table_gets_typed_values_and_keeps_its_own_columns() {
        setup();
        Spi::run(
            "CREATE TABLE public.clients (notion_id uuid PRIMARY KEY, name text, fee numeric CHECK (fee < 400),
             services text[], since date, info text, app_notes text DEFAULT 'app')",
        )
        .unwrap();
        Spi::run(&format!(
            "SELECT notion_sync.register_database('alice', '{CLIENTS}', 'Clients', 'manual', 'UTC', 'public.clients',
               '{{\"notion_id\": \"@id\", \"name\": \"Name\", \"fee\": \"Monthly fee\",
                 \"services\": \"Products/Services\", \"since\": \"Client since\", \"info\": \"@content\"}}')"
        ))
        .unwrap();
        let r = sync(CLIENTS, None, "full");
        // Northwind's fee (420) breaks the CHECK: that page alone is recorded and skipped.
        assert_eq!(
            (r["status"].as_str(), r["created"].as_i64()),
            (Some("partial"), Some(2))
        );
        assert!(r["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("check constraint"));
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT concat_ws('|', name, fee, array_to_string(services, ','), since, left(info, 13), app_notes)
                   FROM public.clients WHERE name = 'Acme Bakery'"
            )
            .unwrap()
            .unwrap(),
            "Acme Bakery|149.5|Web design,Hosting|2024-03-15|Family bakery|app"
        );
        assert_eq!(
            count("SELECT count(*) FROM notion_sync.notion_pages_sync"),
            0
        );
        assert_eq!(count("SELECT count(*) FROM notion_sync.mapped_pages"), 2);
    }

    #[pg_test(
        error = "public.keyless needs a unique key on column \"notion_id\" alone (the column mapped to @id), for example: ALTER TABLE public.keyless ADD UNIQUE (\"notion_id\")"
    )]
    fn a_mapped_table_needs_a_unique_key_on_the_id_column() {
        Spi::run("CREATE TABLE public.keyless (notion_id text, name text)").unwrap();
        Spi::run(&format!(
            "SELECT notion_sync.register_database('alice', '{CLIENTS}', 'Clients', 'manual', 'UTC', 'public.keyless',
               '{{\"notion_id\": \"@id\", \"name\": \"Name\"}}')"
        ))
        .unwrap();
    }
}
