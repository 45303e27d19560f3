//! Hosted file URLs that work. Notion signs the URL of every file it hosts for one hour
//! (`expiry_time`, kept next to the URL in `properties`); the mirror does not rewrite a page only
//! because its URLs were signed again, so a stored URL expires. `notion_sync.file_url()` returns
//! the stored URL while it is valid, and otherwise reads the page again (one request), stores the
//! fresh value of that property and returns it: the seed's "fallback to the Notion API when the
//! copy is stale".

use crate::error::SyncError;
use crate::mapping;
use crate::notion::model;
use crate::storage;
use crate::sync::{self, Txn};
use pgrx::prelude::*;
use serde_json::Value;

/// A URL that expires within this margin is fetched again: the caller still has to use it.
const MARGIN_MS: i64 = 60_000;

/// Internal (SQL: `notion_sync.file_url`): the URL of file `p_index` of a files property.
#[pg_extern(volatile, parallel_unsafe)]
fn _file_url(p_user_id: &str, p_page_id: &str, p_property: &str, p_index: i32) -> Option<String> {
    // A URL read again is stored as Notion has it: not a change to send back.
    let _applying = crate::writeback::Applying::begin();
    file_url(p_user_id, p_page_id, p_property, p_index).unwrap_or_else(|e| e.raise())
}

/// Whether a stored file value can still be used: external files never expire.
fn usable(file: &Value, now_ms: i64) -> bool {
    match file.get("expiry_time").and_then(|t| t.as_str()) {
        None => true,
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.timestamp_millis() > now_ms + MARGIN_MS)
            .unwrap_or(false),
    }
}

fn url_at(value: &Value, index: usize) -> Option<String> {
    value
        .get("value")?
        .get(index)?
        .get("url")?
        .as_str()
        .map(String::from)
}

/// The caller may read `user`'s files: a superuser, a member of notion_sync_admin, or the role
/// whose application user is `user` (role_users or Supabase's auth.uid()). The role is the one
/// the caller runs as (SET ROLE included), not this SECURITY DEFINER function's owner.
fn check_caller(user: &str) -> Result<(), SyncError> {
    let role = unsafe { pg_sys::GetOuterUserId() };
    let allowed = Spi::get_one_with_args::<bool>(
        "SELECT r.rolsuper OR pg_catalog.pg_has_role(r.oid, 'notion_sync_admin', 'MEMBER')
                OR notion_sync.user_id_for_role(r.rolname) IS NOT DISTINCT FROM $2
           FROM pg_catalog.pg_roles r WHERE r.oid = $1",
        &[role.into(), user.into()],
    )?
    .unwrap_or(false);
    if allowed {
        Ok(())
    } else {
        Err(SyncError::Forbidden(format!(
            "the current role may not read the files of user {user:?}"
        )))
    }
}

pub fn file_url(
    user: &str,
    page_id: &str,
    property: &str,
    index: i32,
) -> Result<Option<String>, SyncError> {
    check_caller(user)?;
    let page_id = sync::normalize_id(page_id)?;
    let index = usize::try_from(index).map_err(|_| {
        SyncError::InvalidArgument(format!("p_index must be 0 or more, got {index}"))
    })?;
    let stored = storage::stored_properties(user, &page_id)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    if let Some((_, props)) = &stored {
        let found = props
            .as_object()
            .and_then(|m| mapping::find_in(m, property));
        if let Some(file) = found
            .and_then(|(_, v)| v.get("value"))
            .and_then(|v| v.get(index))
        {
            if usable(file, now_ms) {
                return Ok(file.get("url").and_then(|u| u.as_str()).map(String::from));
            }
        }
    }
    // Expired, or a page only a table of the user's own holds: read the page again.
    let mut client = sync::client_for(user, Txn::Caller, &sync::sql_interrupt)?;
    let raw = client
        .get(&format!("/pages/{page_id}"))
        .map_err(|e| sync::page_error(e, user, &page_id))?;
    let page = model::parse_page(&raw).map_err(SyncError::Storage)?;
    let Some((name, value)) = mapping::find_property(&page, property) else {
        return Err(SyncError::InvalidArgument(format!(
            "page {page_id} has no property {property:?}"
        )));
    };
    if value["type"] != "files" {
        return Err(SyncError::InvalidArgument(format!(
            "property {name:?} of page {page_id} is a {} property, not files",
            value["type"].as_str().unwrap_or("?")
        )));
    }
    if let Some((table, _)) = &stored {
        let fresh = value["value"].clone();
        Txn::Caller.run(|| storage::refresh_property(table, user, &page_id, name, fresh))?;
    }
    Ok(url_at(value, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expiry_decides_and_external_files_never_expire() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert!(usable(&json!({"url": "https://x/a.png"}), now));
        assert!(usable(
            &json!({"url": "u", "expiry_time": "2026-01-01T00:30:00.000Z"}),
            now
        ));
        // Inside the margin: the caller could not use it any more.
        assert!(!usable(
            &json!({"url": "u", "expiry_time": "2026-01-01T00:00:30.000Z"}),
            now
        ));
        assert!(!usable(&json!({"url": "u", "expiry_time": "garbage"}), now));
    }
}
