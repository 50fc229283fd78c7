//! Facts derived from request data before the raw data is dropped.
//!
//! Enrichment runs inside the ingest path, between reading a request and
//! queuing its depersonalized [`crate::event::Event`]. Everything here takes
//! raw inputs (User-Agent, URLs, and — in [`geo`] — the full client IP) and
//! returns coarse, non-identifying facts: browser and device ([`ua`],
//! [`bots`]), page and referrer parts ([`url`]), country/region/city and
//! network ([`geo`]), traffic source and channel ([`source`]), screen class
//! ([`screen`]). Nothing in this module stores or logs its inputs.

pub mod bots;
pub mod geo;
pub mod screen;
pub mod source;
pub mod ua;
pub mod uap;
pub mod url;
