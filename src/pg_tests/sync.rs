//! The sync engine: full and incremental runs, windows, deletions, errors, API versions.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::*;
    use serde_json::json;

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
}
