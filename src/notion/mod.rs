//! Everything that speaks Notion: the HTTP client and the JSON model. Pure Rust, no Postgres.
pub mod client;
#[cfg(test)]
mod fuzz;
pub mod model;
pub mod pool;
