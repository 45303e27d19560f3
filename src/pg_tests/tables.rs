//! The sync tables: the Rust list (`storage::TABLES`, which the engine writes by) against the
//! catalog (sql/schema.sql, which creates them), so the two cannot drift apart.

#[pgrx::pg_schema]
mod tests {
    use crate::storage::TABLES;
    use pgrx::prelude::*;

    fn has_column(table: &str, column: &str) -> bool {
        Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                             WHERE attrelid = pg_catalog.to_regclass('notion_sync.' || $1)
                               AND attname = $2 AND attnum > 0 AND NOT attisdropped)",
            &[table.into(), column.into()],
        )
        .unwrap()
        .unwrap_or(false)
    }

    #[pg_test]
    fn the_rust_list_of_sync_tables_matches_the_catalog() {
        let mut catalog: Vec<String> = Spi::get_one::<Vec<String>>(
            "SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'notion_sync' AND c.relkind = 'r' AND c.relname LIKE 'notion\\_%\\_sync'",
        )
        .unwrap()
        .unwrap_or_default();
        let mut listed: Vec<String> = TABLES.iter().map(|t| t.table.to_string()).collect();
        catalog.sort();
        listed.sort();
        assert_eq!(listed, catalog);
        for t in &TABLES {
            for col in [t.name_col, t.text_col] {
                assert!(has_column(t.table, col), "{}.{col}", t.table);
            }
            if let Some((col, _)) = t.desc {
                assert!(has_column(t.table, col), "{}.{col}", t.table);
            }
            assert_eq!(
                has_column(t.table, "message_count"),
                t.message_count,
                "{}",
                t.table
            );
            assert_eq!(
                has_column(t.table, "database_name"),
                t.database_name,
                "{}",
                t.table
            );
        }
    }
}
