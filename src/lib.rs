//! notion_sync: Notion databases mirrored inside PostgreSQL.
//!
//! Rooms: `notion` (HTTP client + JSON model, pure Rust), `sync` (the engine), `storage` (SPI:
//! `sync_table` and `mapped` are the two targets of a sync, `runs` the run record, `queue` and
//! `schedules` what the worker reads), `mapping` (column maps and type conversion, pure),
//! `api` (SQL functions), `schedule` (cron), `launcher` (one scheduler per database of the cluster), `worker` (the scheduler of one database), `webhook`, `writeback` (changes made in Postgres sent to Notion), `files` (hosted file URLs),
//! `discovery` (what the token can see), `typed_view` (a column per property), `progress` (running
//! syncs, in shared memory), `shmem` (what backends share), `gucs` (settings), `error` (SQLSTATEs). Schema SQL lives in `sql/`.

use pgrx::prelude::*;

mod api;
mod discovery;
mod error;
mod files;
mod gucs;
mod launcher;
pub mod mapping;
pub mod notion;
mod page_tree;
mod progress;
pub mod schedule;
mod shmem;
mod storage;
mod sync;
mod typed_view;
mod webhook;
mod worker;
mod writeback;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!(
    "../sql/api.sql",
    name = "api",
    requires = [
        "schema",
        _sync_database,
        _sync_all,
        normalize_notion_id,
        target_table_for,
        _next_run,
        _handle_webhook,
        _webhook_rejected,
        _check_target,
        _file_url,
        _discover_databases,
        _create_typed_view,
        _sync_progress,
        _schedulers
    ]
);
extension_sql_file!("../sql/read.sql", name = "read", requires = ["schema"]);
extension_sql_file!(
    "../sql/writeback.sql",
    name = "writeback",
    requires = [
        "api",
        _applying,
        _wake_writeback,
        _writeback_schema,
        _write_page
    ]
);
// COMMENT ON for the public functions and views: last, after everything they describe (`requires`
// alone does not place a file after the `finalize` one, so the finalize slot is this file's).
extension_sql_file!(
    "../sql/comments.sql",
    name = "comments",
    requires = [
        "api",
        "read",
        "writeback",
        normalize_notion_id,
        target_table_for
    ],
    finalize
);

#[allow(non_snake_case)]
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    shmem::init();
    progress::init();
    launcher::init();
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
