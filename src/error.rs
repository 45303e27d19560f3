//! Errors a user sees, each with a real SQLSTATE and a message that says what to do.

use crate::notion::client::ApiError;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgLogLevel;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error(
        "no Notion token for user {0}: set it with notion_sync.set_notion_token(user_id, token)"
    )]
    MissingToken(String),
    #[error("Notion rejected the token for user {0}: set it with notion_sync.set_notion_token(user_id, token)")]
    BadToken(String),
    #[error("Notion database {0} was not found or is not shared with the integration: open it in Notion, choose ... > Connections and add the integration")]
    NotShared(String),
    /// A webhook's page refetch answered 403: the page is not shared with the integration.
    #[error("Notion page {0} is not shared with the integration (403): share its database with the integration")]
    NotSharedPage(String),
    #[error("{0}")]
    Api(ApiError),
    /// A webhook delivery that is not from Notion (signature missing, malformed or wrong).
    #[error("webhook rejected: {0}")]
    BadSignature(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Storage(String),
    /// Notion failed for several pages in a row (timeouts, refused connections, 5xx after the
    /// retries): the run stops instead of going on page by page.
    #[error("{0}")]
    Unreachable(String),
    /// The calling role may not do this (another user's data).
    #[error("{0}")]
    Forbidden(String),
    /// The installed schema is older than the library (a package upgrade without ALTER EXTENSION).
    #[error("the notion_sync schema in this database is at version {0} but the installed library is {lib}: run ALTER EXTENSION notion_sync UPDATE", lib = crate::storage::LIBRARY_VERSION)]
    Version(String),
    /// A mapped table or column map that cannot be written (storage/mapped.rs), with its SQLSTATE.
    #[error("{1}")]
    Target(PgSqlErrorCode, String),
}

impl SyncError {
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        match self {
            SyncError::InvalidArgument(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            SyncError::MissingToken(_) | SyncError::BadToken(_) | SyncError::BadSignature(_) => {
                PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION
            }
            SyncError::BadRequest(_) => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            SyncError::NotShared(_) | SyncError::NotSharedPage(_) => {
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT
            }
            SyncError::Api(ApiError::Config(_)) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            SyncError::Api(ApiError::Transport(_)) => PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
            SyncError::Api(_) => PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
            SyncError::Storage(_) => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            SyncError::Target(code, _) => *code,
            SyncError::Unreachable(_) => PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
            SyncError::Forbidden(_) => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            SyncError::Version(_) => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        }
    }

    /// Whether a run that ends with this error raises it to the SQL caller, besides recording a
    /// `failed` run: what the user must fix (token, sharing, the target table, a setting).
    pub fn raised_by_sync(&self) -> bool {
        matches!(
            self,
            SyncError::BadToken(_)
                | SyncError::NotShared(_)
                | SyncError::Target(..)
                | SyncError::Api(ApiError::Config(_))
        )
    }

    /// Raises the error in Postgres (does not return).
    pub fn raise(self) -> ! {
        let code = self.sqlstate();
        ErrorReport::new(code, self.to_string(), "notion_sync").report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

impl From<pgrx::spi::SpiError> for SyncError {
    fn from(e: pgrx::spi::SpiError) -> Self {
        SyncError::Storage(e.to_string())
    }
}

/// The message of an error caught with `PgTryBuilder`.
pub fn caught_message(e: &pgrx::pg_sys::panic::CaughtError) -> String {
    use pgrx::pg_sys::panic::CaughtError;
    match e {
        CaughtError::PostgresError(r)
        | CaughtError::ErrorReport(r)
        | CaughtError::RustPanic { ereport: r, .. } => r.message().to_string(),
    }
}
