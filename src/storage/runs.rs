//! The run record (`notion_sync.sync_runs` and its `sync_errors`): what a run is (mode, trigger,
//! status), its counts, the one record a run keeps from start to finish, its lock, and the
//! housekeeping of the history (closing runs a stop interrupted, retention).

use super::{PageError, Result};
use crate::error::SyncError;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Mode {
    Full,
    Incremental,
}

impl Mode {
    pub fn parse(s: &str) -> std::result::Result<Mode, SyncError> {
        match s.trim().to_lowercase().as_str() {
            "full" => Ok(Mode::Full),
            "incremental" => Ok(Mode::Incremental),
            other => Err(SyncError::InvalidArgument(format!(
                "unknown sync mode {other:?}: use 'full' or 'incremental'"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
        }
    }
}

/// What started a run (`sync_runs.trigger`).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Trigger {
    /// A SQL call (`sync_notion_database`, `sync_all_notion_databases`).
    Manual,
    /// The worker, on the database's schedule.
    Schedule,
    /// The worker, for a `data_source.*` / `database.*` webhook event.
    Webhook,
}

impl Trigger {
    pub fn parse(s: &str) -> std::result::Result<Trigger, SyncError> {
        match s {
            "manual" => Ok(Trigger::Manual),
            "schedule" => Ok(Trigger::Schedule),
            "webhook" => Ok(Trigger::Webhook),
            other => Err(SyncError::InvalidArgument(format!(
                "unknown trigger {other:?}: use 'manual', 'schedule' or 'webhook'"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Webhook => "webhook",
        }
    }
}

/// `sync_runs.status` (its CHECK constraint lists the same five).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum RunStatus {
    Running,
    Succeeded,
    /// Done, with page errors (or a guard that held deletions back).
    Partial,
    Failed,
    /// Another run of the database was going on.
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }
}

/// What a run counted. `deleted` is known only at the end; requests and retries come from the
/// client.
#[derive(Default, Clone, Copy, Debug)]
pub struct Counts {
    pub total: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub deleted: i64,
    pub requests: i64,
    pub retries: i64,
}

/// Why a run ended early: a sync error, or a skip (another run of the database was going on).
pub enum Fatal {
    Error(SyncError),
    Skipped(String),
}

impl Fatal {
    pub fn message(&self) -> String {
        match self {
            Fatal::Error(e) => e.to_string(),
            Fatal::Skipped(s) => s.clone(),
        }
    }
}

/// One run, from its `sync_runs` row written at the start to the end that closes it.
pub struct RunRecord {
    pub id: i64,
    pub user: String,
    pub db: String,
    pub db_name: String,
    pub mode: Mode,
    pub started: Instant,
    /// The run lock, once taken.
    pub lock: Option<(i32, i32)>,
    pub counts: Counts,
    pub errors: Vec<PageError>,
    /// Set when the run is closed.
    duration_ms: i64,
}

/// Where a new run row comes from.
pub struct NewRun<'a> {
    pub user: &'a str,
    pub db: &'a str,
    pub db_name: &'a str,
    pub target: &'a str,
    pub mode: Mode,
    pub trigger: Trigger,
    pub started: Instant,
}

impl RunRecord {
    /// Inserts the run row with `status` (running, or skipped when the lock was not free).
    pub fn open(new: NewRun, status: RunStatus) -> Result<RunRecord> {
        let args = [
            new.user.into(),
            new.db.into(),
            new.db_name.into(),
            new.target.into(),
            new.trigger.as_str().into(),
            new.mode.as_str().into(),
            status.as_str().into(),
        ];
        let id = Spi::get_one_with_args::<i64>(
            "INSERT INTO notion_sync.sync_runs (user_id, database_id, database_name, target_table, trigger, mode, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING run_id",
            &args,
        )?
        .ok_or_else(|| SyncError::Storage("no run id".into()))?;
        Ok(RunRecord {
            id,
            user: new.user.to_string(),
            db: new.db.to_string(),
            db_name: new.db_name.to_string(),
            mode: new.mode,
            started: new.started,
            lock: None,
            counts: Counts::default(),
            errors: vec![],
            duration_ms: 0,
        })
    }

    /// How the run ends: skipped or failed by `fatal`, else partial when a page failed.
    pub fn status(&self, fatal: Option<&Fatal>) -> RunStatus {
        match fatal {
            Some(Fatal::Skipped(_)) => RunStatus::Skipped,
            Some(Fatal::Error(_)) => RunStatus::Failed,
            None if !self.errors.is_empty() => RunStatus::Partial,
            None => RunStatus::Succeeded,
        }
    }

    /// Writes the end of the run: its row, its errors, and a NOTIFY when rows changed.
    pub fn close(&mut self, status: RunStatus, error: Option<&str>) -> Result<()> {
        self.duration_ms = self.started.elapsed().as_millis() as i64;
        let c = &self.counts;
        let int = |n: i64| (n as i32).into();
        Spi::run_with_args(
            "UPDATE notion_sync.sync_runs SET status = $2, database_name = $3, total = $4, created = $5,
                    updated = $6, skipped = $7, deleted = $8, errors = $9, http_requests = $10, retries = $11,
                    duration_ms = $12, error = $13, finished_at = clock_timestamp()
              WHERE run_id = $1",
            &[
                self.id.into(),
                status.as_str().into(),
                self.db_name.as_str().into(),
                int(c.total),
                int(c.created),
                int(c.updated),
                int(c.skipped),
                int(c.deleted),
                int(self.errors.len() as i64),
                int(c.requests),
                int(c.retries),
                self.duration_ms.into(),
                error.map(String::from).into(),
            ],
        )?;
        self.record_errors()?;
        if c.created + c.updated + c.deleted > 0 {
            super::notify(
                &json!({"run_id": self.id, "user_id": self.user, "database_id": self.db,
                "created": c.created, "updated": c.updated, "deleted": c.deleted}),
            )?;
        }
        Ok(())
    }

    fn record_errors(&self) -> Result<()> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let list: Vec<Value> = self
            .errors
            .iter()
            .map(|(p, e)| json!({"page_id": p, "error": e}))
            .collect();
        Spi::run_with_args(
            "INSERT INTO notion_sync.sync_errors (run_id, user_id, database_id, notion_page_id, error)
             SELECT $1, $2, $3, e.page_id, e.error FROM jsonb_to_recordset($4) AS e(page_id text, error text)",
            &[
                self.id.into(),
                self.user.as_str().into(),
                self.db.as_str().into(),
                JsonB(Value::Array(list)).into(),
            ],
        )?;
        Ok(())
    }

    pub fn log(&self) {
        let c = &self.counts;
        pgrx::log!(
            "notion_sync: synced {} ({}): total {}, created {}, updated {}, skipped {}, deleted {}, errors {} in {} ms",
            self.db_name, self.mode.as_str(), c.total, c.created, c.updated, c.skipped, c.deleted,
            self.errors.len(), self.duration_ms
        );
    }

    /// What the caller gets back. A fatal error a SQL caller must see is raised by the caller.
    pub fn outcome(self, status: RunStatus, fatal: Option<Fatal>) -> Outcome {
        let error = fatal.as_ref().map(Fatal::message);
        let raise = match fatal {
            Some(Fatal::Error(e)) if e.raised_by_sync() => Some(e),
            _ => None,
        };
        Outcome {
            run_id: Some(self.id),
            duration_ms: self.duration_ms,
            database_id: self.db,
            database_name: self.db_name,
            mode: self.mode,
            status,
            counts: self.counts,
            errors: self.errors,
            error,
            raise,
        }
    }
}

/// The result of one sync, as `notion_sync.sync_result` has it.
pub struct Outcome {
    pub run_id: Option<i64>,
    pub database_id: String,
    pub database_name: String,
    pub mode: Mode,
    pub status: RunStatus,
    pub counts: Counts,
    pub errors: Vec<PageError>,
    /// Why the run failed or was skipped.
    pub error: Option<String>,
    pub duration_ms: i64,
    /// A failure the caller of `sync_notion_database` should see as an ERROR (bad token, not shared).
    pub raise: Option<SyncError>,
}

impl Outcome {
    /// A sync that could not start (`sync_all_notion_databases` goes on with the others).
    pub fn failed(db: &str, db_name: &str, mode: Mode, e: &SyncError) -> Outcome {
        Outcome {
            run_id: None,
            database_id: db.to_string(),
            database_name: db_name.to_string(),
            mode,
            status: RunStatus::Failed,
            counts: Counts::default(),
            errors: vec![(None, e.to_string())],
            error: None,
            duration_ms: 0,
            raise: None,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut errors: Vec<Value> = self
            .errors
            .iter()
            .take(100)
            .map(|(p, e)| json!({"page_id": p, "error": e}))
            .collect();
        if let Some(e) = &self.error {
            errors.insert(0, json!({"page_id": null, "error": e}));
        }
        let c = &self.counts;
        json!({
            "run_id": self.run_id, "database_id": self.database_id, "database_name": self.database_name,
            "mode": self.mode.as_str(), "status": self.status.as_str(), "total": c.total,
            "created": c.created, "updated": c.updated, "skipped": c.skipped,
            "deleted": c.deleted, "errors": errors, "duration_ms": self.duration_ms,
        })
    }
}

/// Advisory-lock key of one database's runs: a fixed class id ('ns') and a hash of user and id.
pub fn lock_key(user: &str, db: &str) -> (i32, i32) {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{user}\n{db}").as_bytes());
    (0x6e73, i32::from_be_bytes([h[0], h[1], h[2], h[3]]))
}

/// Takes the run lock of a database. `wait`: a transaction-level lock waited for (SQL calls);
/// otherwise a session-level try (the worker, whose run spans many transactions).
pub fn lock_run(key: (i32, i32), wait: bool) -> Result<bool> {
    if wait {
        Spi::run_with_args(
            "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
            &[key.0.into(), key.1.into()],
        )?;
        return Ok(true);
    }
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_try_advisory_lock($1, $2)",
        &[key.0.into(), key.1.into()],
    )?
    .unwrap_or(false))
}

pub fn unlock_run(key: (i32, i32)) -> Result<()> {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_unlock($1, $2)",
        &[key.0.into(), key.1.into()],
    )?;
    Ok(())
}

/// Closes the runs of the worker (schedule and webhook) that a previous stop left `running`: the
/// next run resumes from the watermark. Returns how many.
/// Pages the last complete full scan of a database read (0 when none): what sync_progress
/// estimates the remaining time of a full scan from.
pub fn last_full_total(user: &str, db: &str) -> Result<i64> {
    let total = super::optional::<i32>(
        "SELECT total FROM notion_sync.sync_runs
          WHERE user_id = $1 AND database_id = $2 AND mode = 'full' AND status IN ('succeeded', 'partial')
          ORDER BY run_id DESC LIMIT 1",
        &[user.into(), db.into()],
    )?;
    Ok(total.unwrap_or(0) as i64)
}

pub fn close_interrupted() -> Result<i64> {
    Ok(Spi::get_one_with_args::<i64>(
        "WITH c AS (UPDATE notion_sync.sync_runs
            SET status = $1, finished_at = pg_catalog.clock_timestamp(),
                error = 'interrupted: the worker stopped before the run finished; the next run resumes from the watermark'
          WHERE status = $2 AND trigger IN ($3, $4) RETURNING 1)
         SELECT count(*) FROM c",
        &[
            RunStatus::Failed.as_str().into(),
            RunStatus::Running.as_str().into(),
            Trigger::Schedule.as_str().into(),
            Trigger::Webhook.as_str().into(),
        ],
    )?
    .unwrap_or(0))
}

/// Retention: run history and settled webhook events older than `keep` (an interval) go; pages
/// are never deleted because they are old.
pub fn expire(keep: &str) -> Result<()> {
    Spi::run_with_args(
        "DELETE FROM notion_sync.sync_errors WHERE created_at < pg_catalog.now() - $1::interval",
        &[keep.into()],
    )?;
    Spi::run_with_args(
        "DELETE FROM notion_sync.webhook_events WHERE status <> $2
            AND received_at < pg_catalog.now() - $1::interval",
        &[
            keep.into(),
            super::queue::EventStatus::Pending.as_str().into(),
        ],
    )?;
    Spi::run_with_args(
        "DELETE FROM notion_sync.sync_runs WHERE status <> $2
            AND started_at < pg_catalog.now() - $1::interval",
        &[keep.into(), RunStatus::Running.as_str().into()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_triggers_parse() {
        assert_eq!(Mode::parse("FULL").unwrap(), Mode::Full);
        assert!(Mode::parse("everything").is_err());
        assert_eq!(Trigger::parse("webhook").unwrap(), Trigger::Webhook);
        assert!(Trigger::parse("cron").is_err());
    }

    #[test]
    fn a_sync_that_could_not_start_reads_as_a_failed_result() {
        let e = SyncError::MissingToken("bob".into());
        let v = Outcome::failed("db", "Characters", Mode::Full, &e).to_json();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["total"], 0);
        assert_eq!(v["run_id"], Value::Null);
        assert_eq!(v["errors"][0]["page_id"], Value::Null);
        assert_eq!(v["errors"][0]["error"], e.to_string());
    }
}
