//! Everything that speaks Notion: the HTTP client and the JSON model. Pure Rust, no Postgres.
pub mod client;
pub mod model;
