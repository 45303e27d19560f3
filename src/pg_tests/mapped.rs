//! Tables of the user's own: typed values, own columns kept, the unique key on the id column.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::*;

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
