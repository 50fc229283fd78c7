//! Facts derived from request data before the raw data is dropped.
//!
//! Enrichment runs inside the ingest path, between reading a request and
//! queuing its depersonalized [`crate::event::Event`]. Everything here takes
//! raw inputs (User-Agent, URLs, and — in [`geo`] — the full client IP) and
//! returns coarse, non-identifying facts. Nothing in this module stores or
//! logs its inputs.

pub mod bots;
pub mod geo;
pub mod ua;
pub mod url;
