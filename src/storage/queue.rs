//! The webhook queue (`notion_sync.webhook_events`) as the worker reads and settles it;
//! `webhook.rs` fills it and applies its events.

use super::Result;
use pgrx::prelude::*;

/// `webhook_events.status` (its CHECK constraint lists the same four).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum EventStatus {
    Pending,
    Done,
    Ignored,
    Failed,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Done => "done",
            EventStatus::Ignored => "ignored",
            EventStatus::Failed => "failed",
        }
    }
}

/// A queued event, as `claim_events` reads it.
pub struct Event {
    pub id: String,
    pub user: String,
    pub kind: String,
    pub entity: Option<String>,
    pub parent: Option<String>,
    pub attempts: i32,
}

/// How an attempt at an event ended.
#[derive(Debug, PartialEq)]
pub enum Settled {
    Done(String),
    Ignored(String),
    /// Not tried: its database is being synced. Pending again in 2 s, no attempt counted.
    Later,
    /// Failed; pending again after a backoff of 2^attempts s.
    Retry(String),
    /// Failed for the last time.
    Failed(String),
}

impl Settled {
    fn status(&self) -> EventStatus {
        match self {
            Settled::Done(_) => EventStatus::Done,
            Settled::Ignored(_) => EventStatus::Ignored,
            Settled::Failed(_) => EventStatus::Failed,
            Settled::Later | Settled::Retry(_) => EventStatus::Pending,
        }
    }
}

/// Up to `limit` events due, oldest Notion timestamp first.
pub fn claim_events(limit: i64) -> Result<Vec<Event>> {
    Spi::connect(|c| {
        c.select(
            "SELECT id, user_id, type, entity_id, parent_id, attempts FROM notion_sync.webhook_events
              WHERE status = $1 AND next_attempt_at <= pg_catalog.now()
              ORDER BY coalesce(event_time, received_at), received_at LIMIT $2",
            None,
            &[EventStatus::Pending.as_str().into(), limit.into()],
        )?
        .map(|r| {
            Ok(Event {
                id: r.get::<String>(1)?.unwrap_or_default(),
                user: r.get::<String>(2)?.unwrap_or_default(),
                kind: r.get::<String>(3)?.unwrap_or_default(),
                entity: r.get::<String>(4)?,
                parent: r.get::<String>(5)?,
                attempts: r.get::<i32>(6)?.unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>>>()
    })
}

/// Records how an attempt at event `id` ended.
pub fn settle(id: &str, settled: &Settled) -> Result<()> {
    let status = settled.status();
    let (note, error) = match settled {
        Settled::Done(n) | Settled::Ignored(n) => (Some(n.as_str()), None),
        Settled::Retry(e) | Settled::Failed(e) => (None, Some(e.as_str())),
        Settled::Later => (None, None),
    };
    let later = *settled == Settled::Later;
    Spi::run_with_args(
        "UPDATE notion_sync.webhook_events SET
            status = $2,
            attempts = attempts + CASE WHEN $5 THEN 0 ELSE 1 END,
            next_attempt_at = pg_catalog.now() + CASE WHEN $5 THEN interval '2 s'
                ELSE pg_catalog.make_interval(secs => 2 ^ (attempts + 1)) END,
            processed_at = CASE WHEN $6 THEN pg_catalog.clock_timestamp() END,
            result = coalesce($3, result), last_error = coalesce($4, last_error)
          WHERE id = $1",
        &[
            id.into(),
            status.as_str().into(),
            note.map(String::from).into(),
            error.map(String::from).into(),
            later.into(),
            (status != EventStatus::Pending).into(),
        ],
    )?;
    Ok(())
}
