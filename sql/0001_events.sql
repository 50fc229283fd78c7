-- Depersonalized attendance events: one row per pageview or custom event.
-- No column can hold a raw IP or a raw User-Agent. visitor_id is a keyed
-- daily hash (FixedString(16)); ip_prefix holds a /24 or /48 network only in
-- ip_mode = "truncate" and is empty otherwise. Custom properties are parallel
-- arrays (18.16 has no Map type).
-- Ordered for per-site, per-day dashboard reads; partitioned by month so
-- retention can drop whole partitions (18.16 has no TTL).
CREATE TABLE IF NOT EXISTS events
(
    site LowCardinality(String),
    ts DateTime('UTC'),
    name LowCardinality(String),
    visitor_id FixedString(16),
    ip_prefix String,
    hostname LowCardinality(String),
    pathname String,
    referrer_host String,
    referrer_path String,
    utm_source String,
    utm_medium String,
    utm_campaign String,
    utm_content String,
    utm_term String,
    ref_param String,
    source_param String,
    browser LowCardinality(String),
    browser_version LowCardinality(String),
    os LowCardinality(String),
    os_version LowCardinality(String),
    device LowCardinality(String),
    screen_width UInt16,
    interactive UInt8,
    revenue_micros Int64,
    revenue_currency LowCardinality(String),
    prop_keys Array(String),
    prop_values Array(String)
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (site, toDate(ts), name, visitor_id, ts);
