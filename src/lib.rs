//! notion_sync: Notion databases mirrored inside PostgreSQL.
//!
//! Rooms: `notion` (HTTP client + JSON model, pure Rust), `sync` (the engine), `storage` (SPI;
//! `storage::mapped` for tables of the user's own), `mapping` (column maps and type conversion, pure),
//! `api` (SQL functions), `schedule` (cron), `worker` (background scheduler), `webhook`, `files` (hosted file URLs), `shmem` (what
//! backends share), `gucs` (settings), `error` (SQLSTATEs). Schema SQL lives in `sql/`.

use pgrx::prelude::*;

mod api;
mod error;
mod files;
mod gucs;
pub mod mapping;
pub mod notion;
pub mod schedule;
mod shmem;
mod storage;
mod sync;
mod webhook;
mod worker;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!(
    "../sql/api.sql",
    name = "api",
    requires = [
        _sync_database,
        _sync_all,
        normalize_notion_id,
        target_table_for,
        _next_run,
        _handle_webhook,
        _webhook_rejected,
        _check_target,
        _file_url
    ],
    finalize
);
extension_sql_file!("../sql/read.sql", name = "read", requires = ["schema"]);

#[allow(non_snake_case)]
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    shmem::init();
    worker::init();
}

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
