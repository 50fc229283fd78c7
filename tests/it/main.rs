//! Integration tests against the real ClickHouse that `make test` starts
//! (`HEADCOUNT_TEST_CLICKHOUSE_URL`). Each test gets its own database.

mod common;
mod dashboard;
mod durability;
mod geo;
mod ingest;
mod logs;
mod malformed;
mod overload;
mod privacy;
mod salts;
mod stats;
mod store;
mod tracker;
