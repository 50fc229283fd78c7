-- Visits (sessions) and the rollups that make dashboards fast.
--
-- 1. Session columns on `events`, filled by the collector's session map
--    (src/sessions.rs): which visit an event belongs to, and what the event
--    changes about that visit. The changes are deltas, so that summing them
--    over any set of visits gives exact visit counts, bounces and durations
--    without grouping by visit at query time:
--      session_id       random id of the visit; 0: the event belongs to none
--                       (a non-interactive event while no visit is active)
--      session_start    when the visit started (its first interactive event)
--      session_visit    1 on the event that started the visit
--      session_bounce   +1 when a visit starts with a pageview (a bounce so
--                       far), -1 when its next interactive event arrives
--      session_seconds  seconds the event adds to the visit's duration
--                       (time since the visit's previous interactive event)
--    and the visit's acquisition, copied from its first event onto every
--    event of the visit so that "visits from Google" includes the pages
--    viewed after landing (an internal click has no referrer of its own):
--      session_entry_page, session_source, session_channel,
--      session_referrer, session_utm_*.
--    Events stored before this migration have session_id 0 (no visit).
--    One ADD COLUMN per statement (18.16 has no ADD COLUMN IF NOT EXISTS;
--    the runner skips columns that exist), appended in the order of the
--    fields of src/store/row.rs.
ALTER TABLE events ADD COLUMN session_id UInt64;
ALTER TABLE events ADD COLUMN session_start DateTime('UTC') DEFAULT ts;
ALTER TABLE events ADD COLUMN session_visit UInt8;
ALTER TABLE events ADD COLUMN session_bounce Int8;
ALTER TABLE events ADD COLUMN session_seconds UInt32;
ALTER TABLE events ADD COLUMN session_entry_page String;
ALTER TABLE events ADD COLUMN session_source LowCardinality(String);
ALTER TABLE events ADD COLUMN session_channel LowCardinality(String);
ALTER TABLE events ADD COLUMN session_referrer String;
ALTER TABLE events ADD COLUMN session_utm_source String;
ALTER TABLE events ADD COLUMN session_utm_medium String;
ALTER TABLE events ADD COLUMN session_utm_campaign String;
ALTER TABLE events ADD COLUMN session_utm_content String;
ALTER TABLE events ADD COLUMN session_utm_term String;

-- 2. Rollups, filled by materialized views from every insert into `events`
--    (a view sees inserted blocks only: load data through the table). Each
--    rollup has two views:
--    * *_activity_mv, by the time of the event: visitors (uniq visitor
--      ids), sessions (uniq visit ids, for event-level dims such as page),
--      pageviews and custom events. Engagement events are not activity.
--    * *_visits_mv, by the time the visit STARTED: visits, bounces and
--      duration, summed from the session deltas. Only dimensions whose value
--      is the same on every event of a visit are there (the visit's
--      acquisition and entry page, and what comes from the User-Agent and
--      the IP: browser, OS, device, location, network).
--    18.16 wants every column from both views. A *_visits_mv adds the
--    visit's visitor to the bucket where its visit started, where the
--    activity view has already put it (from the visit's first event, which
--    has the same session-constant values), so the uniq states do not
--    change; it adds 0 pageviews and events, and the activity view adds 0
--    visits, bounces and seconds.
--    Read with uniqMerge/uniqIfMerge/sumMerge and GROUP BY: parts are merged
--    in the background, a query must never assume one row per key.
--
--    rollup_hourly: the whole site per hour (headline numbers, charts).
CREATE TABLE IF NOT EXISTS rollup_hourly
(
    site LowCardinality(String),
    hour DateTime('UTC'),
    visitors AggregateFunction(uniq, FixedString(16)),
    pageviews AggregateFunction(sum, UInt64),
    events AggregateFunction(sum, UInt64),
    visits AggregateFunction(sum, UInt64),
    bounces AggregateFunction(sum, Int64),
    duration AggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (site, hour)
SETTINGS index_granularity = 32;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_hourly_activity_mv TO rollup_hourly
AS SELECT
    site,
    toStartOfHour(ts) AS hour,
    uniqState(visitor_id) AS visitors,
    sumState(toUInt64(name = 'pageview')) AS pageviews,
    sumState(toUInt64(name != 'pageview')) AS events,
    sumState(toUInt64(0)) AS visits,
    sumState(toInt64(0)) AS bounces,
    sumState(toUInt64(0)) AS duration
FROM events
WHERE name != 'engagement'
GROUP BY site, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_hourly_visits_mv TO rollup_hourly
AS SELECT
    site,
    toStartOfHour(session_start) AS hour,
    uniqState(visitor_id) AS visitors,
    sumState(toUInt64(0)) AS pageviews,
    sumState(toUInt64(0)) AS events,
    sumState(toUInt64(session_visit)) AS visits,
    sumState(toInt64(session_bounce)) AS bounces,
    sumState(toUInt64(session_seconds)) AS duration
FROM events
WHERE session_id != 0 AND (session_visit != 0 OR session_bounce != 0 OR session_seconds != 0)
GROUP BY site, hour;

--    rollup_daily: per dimension and value per UTC day (breakdowns, and
--    headline numbers and daily charts filtered by one session-constant
--    value). dim is the name of a stats::Dimension. Days, not hours: ranges
--    are whole days, and visitors over several days are the sum of each
--    day's distinct ids (visitor-days), so a day needs one uniq state.
--    Small granules in both rollups: ClickHouse deserializes every uniq
--    state of a granule it touches, and a state holds up to a day's
--    visitors — with the default 8192 rows a query for two days' rows of
--    one value would decode thousands of its neighbours' states.
CREATE TABLE IF NOT EXISTS rollup_daily
(
    site LowCardinality(String),
    dim String,
    day Date,
    value String,
    visitors AggregateFunction(uniq, FixedString(16)),
    sessions AggregateFunction(uniqIf, UInt64, UInt8),
    pageviews AggregateFunction(sum, UInt64),
    events AggregateFunction(sum, UInt64),
    visits AggregateFunction(sum, UInt64),
    bounces AggregateFunction(sum, Int64),
    duration AggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (site, dim, day, value)
SETTINGS index_granularity = 16;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_daily_activity_mv TO rollup_daily
AS SELECT
    site,
    d.1 AS dim,
    toDate(ts) AS day,
    d.2 AS value,
    uniqState(visitor_id) AS visitors,
    uniqIfState(session_id, session_id != 0) AS sessions,
    sumState(toUInt64(name = 'pageview')) AS pageviews,
    sumState(toUInt64(name != 'pageview')) AS events,
    sumState(toUInt64(0)) AS visits,
    sumState(toInt64(0)) AS bounces,
    sumState(toUInt64(0)) AS duration
FROM events
ARRAY JOIN arrayFilter(x -> x.3 = 1, [
    ('page', toString(pathname), toUInt8(name = 'pageview')),
    ('entry_page', toString(session_entry_page), toUInt8(session_id != 0)),
    ('source', toString(session_source), 1),
    ('channel', toString(session_channel), 1),
    ('referrer', toString(session_referrer), 1),
    ('utm_source', toString(session_utm_source), 1),
    ('utm_medium', toString(session_utm_medium), 1),
    ('utm_campaign', toString(session_utm_campaign), 1),
    ('utm_content', toString(session_utm_content), 1),
    ('utm_term', toString(session_utm_term), 1),
    ('browser', toString(browser), 1),
    ('browser_version', toString(browser_version), 1),
    ('os', toString(os), 1),
    ('os_version', toString(os_version), 1),
    ('device', toString(device), 1),
    ('screen', toString(screen_class), 1),
    ('country', toString(country), 1),
    ('region', toString(region), 1),
    ('city', toString(city), 1),
    ('asn', toString(asn_org), 1),
    ('event', toString(name), toUInt8(name != 'pageview'))
]) AS d
WHERE name != 'engagement'
GROUP BY site, dim, day, value;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_daily_visits_mv TO rollup_daily
AS SELECT
    site,
    d.1 AS dim,
    toDate(session_start) AS day,
    d.2 AS value,
    uniqState(visitor_id) AS visitors,
    uniqIfState(session_id, session_id != 0) AS sessions,
    sumState(toUInt64(0)) AS pageviews,
    sumState(toUInt64(0)) AS events,
    sumState(toUInt64(session_visit)) AS visits,
    sumState(toInt64(session_bounce)) AS bounces,
    sumState(toUInt64(session_seconds)) AS duration
FROM events
ARRAY JOIN [
    ('entry_page', toString(session_entry_page)),
    ('source', toString(session_source)),
    ('channel', toString(session_channel)),
    ('referrer', toString(session_referrer)),
    ('utm_source', toString(session_utm_source)),
    ('utm_medium', toString(session_utm_medium)),
    ('utm_campaign', toString(session_utm_campaign)),
    ('utm_content', toString(session_utm_content)),
    ('utm_term', toString(session_utm_term)),
    ('browser', toString(browser)),
    ('browser_version', toString(browser_version)),
    ('os', toString(os)),
    ('os_version', toString(os_version)),
    ('device', toString(device)),
    ('country', toString(country)),
    ('region', toString(region)),
    ('city', toString(city)),
    ('asn', toString(asn_org))
] AS d
WHERE session_id != 0 AND (session_visit != 0 OR session_bounce != 0 OR session_seconds != 0)
GROUP BY site, dim, day, value;
