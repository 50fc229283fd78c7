-- Headline numbers from raw events, for any filters. `scope` keeps the
-- events of the visits the filters select; `match` keeps, among those, the
-- events the event-level filters (page, event, property…) name. Visits
-- started in the range are summed from their session deltas, including
-- events up to `until` (a day after the range) of visits still running at
-- its end, as the rollup does.
SELECT
    uniqIf(visitor_id, ts < /*to*/('2024-01-31 00:00:00') AND name != 'engagement' AND /*match*/(1)) AS visitors,
    countIf(ts < /*to*/('2024-01-31 00:00:00') AND name = 'pageview' AND /*match*/(1)) AS pageviews,
    countIf(ts < /*to*/('2024-01-31 00:00:00') AND name NOT IN ('pageview', 'engagement') AND /*match*/(1)) AS events,
    toUInt64(sumIf(session_visit, session_start >= /*from*/('2024-01-01 00:00:00') AND session_start < /*to*/('2024-01-31 00:00:00'))) AS visits,
    toInt64(sumIf(session_bounce, session_start >= /*from*/('2024-01-01 00:00:00') AND session_start < /*to*/('2024-01-31 00:00:00'))) AS bounces,
    toUInt64(sumIf(session_seconds, session_start >= /*from*/('2024-01-01 00:00:00') AND session_start < /*to*/('2024-01-31 00:00:00'))) AS duration
FROM events
WHERE site = /*site*/('example.com')
    AND ts >= /*from*/('2024-01-01 00:00:00')
    AND ts < /*until*/('2024-02-01 00:00:00')
    AND /*scope*/(1);
