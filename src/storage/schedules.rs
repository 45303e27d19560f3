//! The schedules of registered databases (`notion_sync.databases.schedule`, `next_run_at`) as the
//! worker reads them.

use super::Result;
use crate::schedule;
use pgrx::prelude::*;

/// A scheduled database: `due` to run now (else only its first next run is set), `full` when its
/// last complete full scan is older than a day.
pub struct Due {
    pub user: String,
    pub db: String,
    pub next: Option<String>,
    pub due: bool,
    pub full: bool,
}

/// Reads the databases whose next run is due (or not set yet) and sets their following run, in
/// the caller's transaction.
pub fn claim_due() -> Result<Vec<Due>> {
    let rows = Spi::connect(|c| {
        c.select(
            "SELECT user_id, database_id, schedule, timezone,
                    next_run_at IS NOT NULL AND next_run_at <= pg_catalog.now(),
                    last_full_sync_at IS NULL OR last_full_sync_at < pg_catalog.now() - interval '1 day'
               FROM notion_sync.databases
              WHERE schedule <> 'manual' AND (next_run_at IS NULL OR next_run_at <= pg_catalog.now())
              ORDER BY next_run_at NULLS FIRST",
            None,
            &[],
        )?
        .map(|row| {
            let next = schedule::next_run(
                &row.get::<String>(3)?.unwrap_or_default(),
                &row.get::<String>(4)?.unwrap_or_default(),
                chrono::Utc::now(),
            );
            Ok(Due {
                user: row.get::<String>(1)?.unwrap_or_default(),
                db: row.get::<String>(2)?.unwrap_or_default(),
                next: next.ok().flatten().map(|t| t.to_rfc3339()),
                due: row.get::<bool>(5)?.unwrap_or(false),
                full: row.get::<bool>(6)?.unwrap_or(false),
            })
        })
        .collect::<Result<Vec<_>>>()
    })?;
    for d in &rows {
        Spi::run_with_args(
            "UPDATE notion_sync.databases SET next_run_at = $3::timestamptz
              WHERE user_id = $1 AND database_id = $2",
            &[
                d.user.as_str().into(),
                d.db.as_str().into(),
                d.next.clone().into(),
            ],
        )?;
    }
    Ok(rows)
}
