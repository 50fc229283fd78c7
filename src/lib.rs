//! Headcount counts people without knowing who they are.
//!
//! A request travels one way through these modules, and each hop forgets
//! something:
//!
//! ```text
//!  ingest ──(ClientIp, User-Agent)──▶ privacy + enrich ──(Event)──▶ store ─(row)─▶ spool ─▶ writer ─▶ ClickHouse
//!    │  routes, payload parsing,         │ visitor hash, truncation,      │ RowBinary,   fsynced   exactly
//!    │  trusted proxies, limits          │ UA/bot/referrer/geo lookups    │ migrations   segments  once
//! ```
//!
//! * [`privacy`] is pure and synchronous: IP truncation, salts, the keyed
//!   visitor hash, sealing salts at rest. It knows nothing of HTTP or ClickHouse.
//! * [`ingest`] owns the HTTP beacon. The raw client IP exists only inside it,
//!   wrapped in [`privacy::ClientIp`], which cannot be printed or serialized,
//!   and is consumed by depersonalization before anything is queued.
//! * [`enrich`] derives facts (browser, OS, device, bot, referrer parts and,
//!   later, country/ASN) from request data, before the raw data is dropped.
//! * [`event`] is the depersonalized event: the only thing that crosses into
//!   [`store`]. It has no field that can hold an IP or a raw User-Agent.
//! * [`spool`] sits between ingest and the writer: an fsynced, append-only
//!   log of depersonalized rows (or a bounded in-memory queue), so an
//!   acknowledged event survives ClickHouse outages and crashes. It stores
//!   opaque records and knows neither HTTP nor ClickHouse.
//! * [`store`] talks to ClickHouse: migrations, row encoding, the writer that
//!   drains the spool exactly once, salts. It never sees an IP. `ingest`
//!   never mentions ClickHouse: it hands events to an `EventSink`.
//! * [`sessions`] places each event in a visit (30-minute sessions) at ingest,
//!   so the stats engine ([`stats`]) can sum visits, bounces and durations
//!   from rollups.
//! * [`dashboard`] is the web side for operators: HTML dashboards, shared
//!   links, the Plausible-compatible Stats API and exports, reading numbers
//!   through [`stats`]; [`auth`] keeps who may read them (users, sessions,
//!   API keys, shares). Visitors never meet either.
//! * [`telemetry`] holds the Prometheus registry; labels are small enums.
//! * [`conn`] bounds connections: how many, how large a request head, how
//!   long a slow or idle client may hold one.
//! * [`app`] wires everything together: `app::run(listener, config, clock, shutdown)`.

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod conn;
pub mod dashboard;
pub mod enrich;
pub mod event;
pub mod ingest;
pub mod privacy;
pub mod salt_keeper;
pub mod sessions;
pub mod spool;
pub mod stats;
pub mod store;
pub mod telemetry;
