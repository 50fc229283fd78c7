//! Row types as ClickHouse sees them.
//!
//! [`EventRow`] borrows from an [`Event`] so writing a batch copies nothing.
//! Field order is the column order of `sql/0001_events.sql` followed by the
//! columns later migrations append (`0003_acquisition.sql`, `0005_sessions.sql`); with the
//! client's schema validation off (18.16 cannot answer it), the round-trip
//! integration test is what keeps the two in step.

use super::native::ColumnType;
use crate::event::Event;
use serde::Serialize;
use std::sync::LazyLock;
use time::OffsetDateTime;

#[derive(Debug, Serialize, clickhouse::Row)]
pub struct EventRow<'a> {
    pub site: &'a str,
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub ts: OffsetDateTime,
    pub name: &'a str,
    pub visitor_id: [u8; 16],
    pub ip_prefix: &'a str,
    pub hostname: &'a str,
    pub pathname: &'a str,
    pub referrer_host: &'a str,
    pub referrer_path: &'a str,
    pub utm_source: &'a str,
    pub utm_medium: &'a str,
    pub utm_campaign: &'a str,
    pub utm_content: &'a str,
    pub utm_term: &'a str,
    pub ref_param: &'a str,
    pub source_param: &'a str,
    pub browser: &'a str,
    pub browser_version: &'a str,
    pub os: &'a str,
    pub os_version: &'a str,
    pub device: &'a str,
    pub screen_width: u16,
    pub interactive: u8,
    pub revenue_micros: i64,
    pub revenue_currency: &'a str,
    pub prop_keys: &'a [String],
    pub prop_values: &'a [String],
    // sql/0003_acquisition.sql
    pub country: &'a str,
    pub region: &'a str,
    pub city: &'a str,
    pub asn: u32,
    pub asn_org: &'a str,
    pub source: &'a str,
    pub channel: &'a str,
    pub screen_class: &'a str,
    // sql/0005_sessions.sql
    pub session_id: u64,
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub session_start: OffsetDateTime,
    pub session_visit: u8,
    pub session_bounce: i8,
    pub session_seconds: u32,
    pub session_entry_page: &'a str,
    pub session_source: &'a str,
    pub session_channel: &'a str,
    pub session_referrer: &'a str,
    pub session_utm_source: &'a str,
    pub session_utm_medium: &'a str,
    pub session_utm_campaign: &'a str,
    pub session_utm_content: &'a str,
    pub session_utm_term: &'a str,
}

/// The ClickHouse type of each column of [`EventRow`], in field order: the
/// writer's `Native` blocks state them. The integration tests compare them
/// with the migrated table's.
pub const COLUMN_TYPES: [ColumnType; 49] = {
    use ColumnType::{
        ArrayString as Array, DateTimeUtc as DateTime, FixedString16, Int8, Int64, LowCardinalityString as Lc,
        String as Str, UInt8, UInt16, UInt32, UInt64,
    };
    [
        Lc,
        DateTime,
        Lc,
        FixedString16,
        Str,
        Lc,
        Str,
        Str,
        Str, // site … referrer_path
        Str,
        Str,
        Str,
        Str,
        Str,
        Str,
        Str, // utm_source … source_param
        Lc,
        Lc,
        Lc,
        Lc,
        Lc,
        UInt16,
        UInt8,
        Int64,
        Lc,
        Array,
        Array, // browser … prop_values
        Lc,
        Lc,
        Lc,
        UInt32,
        Lc,
        Lc,
        Lc,
        Lc, // country … screen_class
        UInt64,
        DateTime,
        UInt8,
        Int8,
        UInt32,
        Str,
        Lc,
        Lc,
        Str, // session_id … session_referrer
        Str,
        Str,
        Str,
        Str,
        Str, // session_utm_*
    ]
};
const _: () = assert!(COLUMN_TYPES.len() == <EventRow<'static> as clickhouse::Row>::COLUMN_NAMES.len());

/// The columns the writer inserts, in order: the event row's, then the
/// batch's (`batch_id`, and the row's place in the batch, `batch_row`).
pub static INSERT_COLUMNS: LazyLock<Vec<(&'static str, ColumnType)>> = LazyLock::new(|| {
    <EventRow<'static> as clickhouse::Row>::COLUMN_NAMES
        .iter()
        .copied()
        .zip(COLUMN_TYPES)
        .chain([("batch_id", ColumnType::UInt64), ("batch_row", ColumnType::UInt32)])
        .collect()
});

impl<'a> From<&'a Event> for EventRow<'a> {
    fn from(e: &'a Event) -> Self {
        EventRow {
            site: &e.site,
            ts: e.ts,
            name: &e.name,
            visitor_id: e.visitor_id.0,
            ip_prefix: &e.ip_prefix,
            hostname: &e.hostname,
            pathname: &e.pathname,
            referrer_host: &e.referrer_host,
            referrer_path: &e.referrer_path,
            utm_source: &e.campaign.utm_source,
            utm_medium: &e.campaign.utm_medium,
            utm_campaign: &e.campaign.utm_campaign,
            utm_content: &e.campaign.utm_content,
            utm_term: &e.campaign.utm_term,
            ref_param: &e.campaign.ref_param,
            source_param: &e.campaign.source_param,
            browser: &e.browser,
            browser_version: &e.browser_version,
            os: &e.os,
            os_version: &e.os_version,
            device: e.device,
            screen_width: e.screen_width,
            interactive: u8::from(e.interactive),
            revenue_micros: e.revenue_micros,
            revenue_currency: &e.revenue_currency,
            prop_keys: &e.prop_keys,
            prop_values: &e.prop_values,
            country: &e.location.country,
            region: &e.location.region,
            city: &e.location.city,
            asn: e.location.asn,
            asn_org: &e.location.asn_org,
            source: &e.source,
            channel: e.channel,
            screen_class: e.screen_class,
            session_id: e.session.id,
            session_start: e.session.start,
            session_visit: u8::from(e.session.started),
            session_bounce: e.session.bounce,
            session_seconds: e.session.seconds,
            session_entry_page: e.session.entry.page(),
            session_source: e.session.entry.source(),
            session_channel: e.session.entry.channel,
            session_referrer: e.session.entry.referrer(),
            session_utm_source: e.session.entry.utm_source(),
            session_utm_medium: e.session.entry.utm_medium(),
            session_utm_campaign: e.session.entry.utm_campaign(),
            session_utm_content: e.session.entry.utm_content(),
            session_utm_term: e.session.entry.utm_term(),
        }
    }
}
