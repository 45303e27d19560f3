//! The SQL-facing surface. Thin: arguments in, engine, JSON out. The public functions with
//! composite results are SQL wrappers in sql/api.sql around these internal ones.

use crate::sync::{self, Mode, Outcome, SyncRequest, Trigger};
use pgrx::prelude::*;
use pgrx::JsonB;

/// Internal: one sync, as JSON shaped like `notion_sync.sync_result`.
#[pg_extern(volatile, parallel_unsafe)]
fn _sync_database(
    p_user_id: &str,
    p_database_id: &str,
    p_database_name: Option<&str>,
    p_mode: &str,
    p_hours_back: Option<i32>,
    p_trigger: &str,
) -> JsonB {
    let req = SyncRequest::parse(
        p_user_id,
        p_database_id,
        p_database_name,
        p_mode,
        p_hours_back,
        p_trigger,
    )
    .unwrap_or_else(|e| e.raise());
    match sync::sync_database(&req) {
        Ok(outcome) => {
            if let Some(e) = outcome.raise {
                e.raise();
            }
            JsonB(outcome.to_json())
        }
        Err(e) => e.raise(),
    }
}

/// Internal: every registered database (of one user, or all), one JSON result each. A database
/// that fails does not stop the others: its failure is in its result and in sync_runs.
#[pg_extern(volatile, parallel_unsafe)]
fn _sync_all(
    p_user_id: Option<&str>,
    p_mode: &str,
    p_trigger: &str,
) -> SetOfIterator<'static, JsonB> {
    let mode = Mode::parse(p_mode).unwrap_or_else(|e| e.raise());
    let trigger = Trigger::parse(p_trigger).unwrap_or_else(|e| e.raise());
    let list = crate::storage::registered(p_user_id).unwrap_or_else(|e| e.raise());
    let mut out = vec![];
    for d in list {
        let outcome = SyncRequest::new(&d.user, &d.db, Some(&d.name), mode, None, trigger)
            .and_then(|req| sync::sync_database(&req))
            .unwrap_or_else(|e| Outcome::failed(&d.db, &d.name, mode, &e));
        out.push(JsonB(outcome.to_json()));
    }
    SetOfIterator::new(out)
}

/// A Notion id with or without dashes, or a Notion URL, in the dashed form the API returns.
#[pg_extern(immutable, strict, parallel_safe)]
fn normalize_notion_id(p_id: &str) -> String {
    sync::normalize_id(p_id).unwrap_or_else(|e| e.raise())
}

/// Target sync table for a database name (Characters, Worlds, Stories, Chat Sessions, else pages).
#[pg_extern(immutable, strict, parallel_safe)]
fn target_table_for(p_database_name: &str) -> &'static str {
    crate::storage::target_for_name(p_database_name)
}

/// Internal: the next run of a schedule after `p_after_epoch` (seconds), NULL for `manual`.
/// `notion_sync.next_run()` in sql/api.sql wraps it with timestamptz arguments.
#[pg_extern(immutable, parallel_safe)]
fn _next_run(p_schedule: &str, p_timezone: &str, p_after_epoch: f64) -> Option<f64> {
    let after =
        chrono::DateTime::from_timestamp_micros((p_after_epoch * 1e6) as i64).unwrap_or_default();
    match crate::schedule::next_run(p_schedule, p_timezone, after) {
        Ok(t) => t.map(|t| t.timestamp_micros() as f64 / 1e6),
        Err(e) => crate::error::SyncError::InvalidArgument(e).raise(),
    }
}

/// Internal: one webhook delivery (see `notion_sync.handle_webhook` in sql/api.sql).
#[pg_extern(volatile, parallel_unsafe)]
fn _handle_webhook(p_body: &str, p_signature: Option<&str>, p_user_id: Option<&str>) -> JsonB {
    match crate::webhook::handle(p_body, p_signature, p_user_id) {
        Ok(v) => JsonB(v),
        Err(e) => e.raise(),
    }
}

/// Internal: rejected webhook deliveries since the server started (kept in shared memory because
/// the rejecting transaction rolls back).
#[pg_extern(volatile, parallel_safe)]
fn _webhook_rejected() -> JsonB {
    let (n, at) = crate::shmem::rejected();
    JsonB(serde_json::json!({"count": n, "last_at_epoch": if at > 0 { Some(at) } else { None }}))
}

/// Internal: checks a table of the user's own and its column map for `register_database` (columns
/// exist, unique key on the `@id` column, privileges of `p_role`); returns the qualified name.
#[pg_extern(stable, parallel_unsafe)]
fn _check_target(
    p_target: pg_sys::Oid,
    p_columns: JsonB,
    p_timezone: &str,
    p_role: &str,
) -> String {
    crate::storage::mapped::check(p_target, &p_columns.0, p_timezone, p_role)
        .unwrap_or_else(|e| e.raise())
}
