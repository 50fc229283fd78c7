-- An hourly time series from raw events, for any filters (see
-- days_raw.sql). A visit is counted in the hour it started: its first
-- event has session_visit = 1 and ts = session_start.
SELECT
    toUInt64(toUInt32(toStartOfHour(ts))) AS bucket,
    uniqIf(visitor_id, name != 'engagement' AND /*match*/(1)) AS visitors,
    toUInt64(sum(session_visit)) AS visits,
    countIf(name = 'pageview' AND /*match*/(1)) AS pageviews
FROM events
WHERE site = /*site*/('example.com')
    AND ts >= /*from*/('2024-01-01 00:00:00')
    AND ts < /*to*/('2024-01-03 00:00:00')
    AND /*scope*/(1)
GROUP BY bucket
ORDER BY bucket;
