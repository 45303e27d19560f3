//! The read path: `get_notion_character` tiers and `search_notion_content`.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::*;

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
        // Exact, then prefix (by lowercased name); substring matches only when no name equals or
        // starts with the query (issue 21), or when every match is asked for. Zed matches nothing.
        assert_eq!(
            lookup("'aria'", "20"),
            "ARIA 1, Aria Stormwind 0.9, Ariadne 0.9"
        );
        assert_eq!(
            lookup("'aria'", "NULL"),
            "ARIA 1, Aria Stormwind 0.9, Ariadne 0.9, Maria 0.8"
        );
        assert_eq!(
            lookup("'ria'", "20"),
            "ARIA 0.8, Aria Stormwind 0.8, Ariadne 0.8, Maria 0.8"
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
            3
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
}
