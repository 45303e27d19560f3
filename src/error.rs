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
    #[error("{0}")]
    Api(ApiError),
    /// A webhook delivery that is not from Notion (signature missing, malformed or wrong).
    #[error("webhook rejected: {0}")]
    BadSignature(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Storage(String),
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
            SyncError::NotShared(_) => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            SyncError::Api(ApiError::Config(_)) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            SyncError::Api(ApiError::Transport(_)) => PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
            SyncError::Api(_) => PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
            SyncError::Storage(_) => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            SyncError::Target(code, _) => *code,
        }
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
