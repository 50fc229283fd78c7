-- rollup_daily_mv keeps the dimensions of the event's own day; a second,
-- cheap view writes the visit parts of events whose visit started on an
-- earlier day (a visit crossing midnight).
--
-- Why: 0007's view built, for every event, 39 (dimension, value) elements
-- and threw away the 18 "visit started on another day" ones for almost
-- every event — only events of a visit that crossed midnight keep them —
-- after materializing their 18 string values. Building the array was a
-- large part of ClickHouse's work per event. Now the main view builds the
-- 21 elements of the event's day, and rollup_daily_midnight_mv joins an
-- array of element numbers that is empty unless the event's visit started
-- on an earlier day, and computes names and values only for those.
-- ClickHouse 18.16, 400,000 realistic events in four 100,000-row `Native`
-- inserts: 15.0–15.6 → 13.0–14.2 µs per event (BENCHMARKS.md, sixth
-- session). 200,000 events of which 36,672 belong to a visit started the
-- day before gave identical merged rollup_daily and rollup_hourly numbers
-- with 0007's view and with these two (23,449 result rows, 9,104 of them
-- on the earlier day); tests/it/stats.rs asks every dashboard question of
-- the rollups and of the raw events, including a visit across midnight.
--
-- What each writes is exactly what 0007's view wrote for those elements:
-- * rollup_daily_mv: 0007's first 21 elements, unchanged (activity parts,
--   and the visit parts when the visit started on the event's day);
-- * rollup_daily_midnight_mv: for the events 0007 marked other_day_visit,
--   its last 18 elements — on the day the visit started, no activity
--   (0 pageviews, 0 events), the visit parts, and the visitor and session
--   ids (uniq states) as before.
--
-- Dropped first, as in 0007: an insert by another instance between the
-- statements is then missing from the rollup rather than counted twice.
DROP TABLE IF EXISTS rollup_daily_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_daily_mv TO rollup_daily
AS WITH
    name != 'engagement' AS activity,
    session_id != 0 AND (session_visit != 0 OR session_bounce != 0 OR session_seconds != 0) AS visit_row,
    visit_row AND toDate(session_start) = toDate(ts) AS same_day_visit
SELECT
    site,
    d.1 AS dim,
    d.3 AS day,
    d.2 AS value,
    uniqState(visitor_id) AS visitors,
    uniqIfState(session_id, session_id != 0) AS sessions,
    sumState(toUInt64(d.4 AND name = 'pageview')) AS pageviews,
    sumState(toUInt64(d.4 AND name != 'pageview')) AS events,
    sumState(toUInt64(if(d.5, session_visit, 0))) AS visits,
    sumState(toInt64(if(d.5, session_bounce, 0))) AS bounces,
    sumState(toUInt64(if(d.5, session_seconds, 0))) AS duration
FROM events
ARRAY JOIN arrayFilter(x -> x.4 OR x.5, [
    ('page', toString(pathname), toDate(ts), toUInt8(name = 'pageview'), 0),
    ('entry_page', toString(session_entry_page), toDate(ts), activity AND session_id != 0, same_day_visit),
    ('source', toString(session_source), toDate(ts), activity, same_day_visit),
    ('channel', toString(session_channel), toDate(ts), activity, same_day_visit),
    ('referrer', toString(session_referrer), toDate(ts), activity, same_day_visit),
    ('utm_source', toString(session_utm_source), toDate(ts), activity, same_day_visit),
    ('utm_medium', toString(session_utm_medium), toDate(ts), activity, same_day_visit),
    ('utm_campaign', toString(session_utm_campaign), toDate(ts), activity, same_day_visit),
    ('utm_content', toString(session_utm_content), toDate(ts), activity, same_day_visit),
    ('utm_term', toString(session_utm_term), toDate(ts), activity, same_day_visit),
    ('browser', toString(browser), toDate(ts), activity, same_day_visit),
    ('browser_version', toString(browser_version), toDate(ts), activity, same_day_visit),
    ('os', toString(os), toDate(ts), activity, same_day_visit),
    ('os_version', toString(os_version), toDate(ts), activity, same_day_visit),
    ('device', toString(device), toDate(ts), activity, same_day_visit),
    ('screen', toString(screen_class), toDate(ts), activity, 0),
    ('country', toString(country), toDate(ts), activity, same_day_visit),
    ('region', toString(region), toDate(ts), activity, same_day_visit),
    ('city', toString(city), toDate(ts), activity, same_day_visit),
    ('asn', toString(asn_org), toDate(ts), activity, same_day_visit),
    ('event', toString(name), toDate(ts), activity AND name != 'pageview', 0)
]) AS d
GROUP BY site, dim, day, value;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_daily_midnight_mv TO rollup_daily
AS SELECT
    site,
    [
        'entry_page', 'source', 'channel', 'referrer',
        'utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term',
        'browser', 'browser_version', 'os', 'os_version', 'device',
        'country', 'region', 'city', 'asn'
    ][i + 1] AS dim,
    toDate(session_start) AS day,
    multiIf(
        i = 0, toString(session_entry_page),
        i = 1, toString(session_source),
        i = 2, toString(session_channel),
        i = 3, toString(session_referrer),
        i = 4, toString(session_utm_source),
        i = 5, toString(session_utm_medium),
        i = 6, toString(session_utm_campaign),
        i = 7, toString(session_utm_content),
        i = 8, toString(session_utm_term),
        i = 9, toString(browser),
        i = 10, toString(browser_version),
        i = 11, toString(os),
        i = 12, toString(os_version),
        i = 13, toString(device),
        i = 14, toString(country),
        i = 15, toString(region),
        i = 16, toString(city),
        toString(asn_org)) AS value,
    uniqState(visitor_id) AS visitors,
    uniqIfState(session_id, session_id != 0) AS sessions,
    sumState(toUInt64(0)) AS pageviews,
    sumState(toUInt64(0)) AS events,
    sumState(toUInt64(session_visit)) AS visits,
    sumState(toInt64(session_bounce)) AS bounces,
    sumState(toUInt64(session_seconds)) AS duration
FROM events
ARRAY JOIN if(
    session_id != 0 AND (session_visit != 0 OR session_bounce != 0 OR session_seconds != 0)
        AND toDate(session_start) != toDate(ts),
    range(18),
    emptyArrayUInt8()) AS i
GROUP BY site, dim, day, value;
