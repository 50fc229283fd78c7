-- One row per value of a session-constant dimension (acquisition, entry
-- page, browser, OS, device, location) from raw events, for any filters.
-- Like days_raw.sql, per value: visitors per day, summed; visits, bounces
-- and duration of the visits started in the range.
SELECT
    value,
    toUInt64(sum(visitors)) AS visitors,
    toUInt64(sum(visits)) AS visits,
    toUInt64(sum(pageviews)) AS pageviews,
    toUInt64(sum(events)) AS events,
    toInt64(sum(bounces)) AS bounces,
    toUInt64(sum(duration)) AS duration
FROM
(
    SELECT
        /*dim*/(session_source) AS value,
        toDate(ts) AS day,
        uniqIf(visitor_id, ts < /*to*/('2024-01-31 00:00:00') AND name != 'engagement' AND /*match*/(1)) AS visitors,
        sumIf(session_visit, ts < /*to*/('2024-01-31 00:00:00')) AS visits,
        countIf(ts < /*to*/('2024-01-31 00:00:00') AND name = 'pageview' AND /*match*/(1)) AS pageviews,
        countIf(ts < /*to*/('2024-01-31 00:00:00') AND name NOT IN ('pageview', 'engagement') AND /*match*/(1)) AS events,
        sumIf(session_bounce, session_start >= /*from*/('2024-01-01 00:00:00') AND session_start < /*to*/('2024-01-31 00:00:00')) AS bounces,
        sumIf(session_seconds, session_start >= /*from*/('2024-01-01 00:00:00') AND session_start < /*to*/('2024-01-31 00:00:00')) AS duration
    FROM events
    WHERE site = /*site*/('example.com')
        AND ts >= /*from*/('2024-01-01 00:00:00')
        AND ts < /*until*/('2024-02-01 00:00:00')
        AND /*dim_filter*/(1)
        AND /*scope*/(1)
    GROUP BY value, day
)
GROUP BY value
HAVING visitors > 0 OR visits > 0;
