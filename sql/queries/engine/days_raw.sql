-- Per UTC day from raw events, for any filters. `scope` keeps the events of
-- the visits the filters select (event-level filters: the visits with a
-- matching event); `match` keeps the events the event-level filters (page,
-- event, property…) name, `visit_scope` the events of the visits selected
-- by session-level filters (all the activity part needs). Activity counts the
-- day it happened; visits started in the range are summed from their
-- session deltas by the day they started, including events up to `until`
-- (a day after the range) of visits still running at its end, as the
-- rollups do.
SELECT
    day,
    toUInt64(sum(visitors)) AS visitors,
    toUInt64(sum(pageviews)) AS pageviews,
    toUInt64(sum(events)) AS events,
    toUInt64(sum(visits)) AS visits,
    toInt64(sum(bounces)) AS bounces,
    toUInt64(sum(duration)) AS duration
FROM
(
    SELECT
        toDate(ts) AS day,
        toUInt64(uniqIf(visitor_id, name != 'engagement')) AS visitors,
        toUInt64(countIf(name = 'pageview')) AS pageviews,
        toUInt64(countIf(name NOT IN ('pageview', 'engagement'))) AS events,
        toUInt64(0) AS visits,
        toInt64(0) AS bounces,
        toUInt64(0) AS duration
    FROM events
    WHERE site = /*site*/('example.com')
        AND ts >= /*from*/('2024-01-01 00:00:00')
        AND ts < /*to*/('2024-01-31 00:00:00')
        AND /*visit_scope*/(1)
        AND /*match*/(1)
    GROUP BY day
    UNION ALL
    SELECT
        toDate(session_start) AS day,
        toUInt64(0) AS visitors,
        toUInt64(0) AS pageviews,
        toUInt64(0) AS events,
        toUInt64(sum(session_visit)) AS visits,
        toInt64(sum(session_bounce)) AS bounces,
        toUInt64(sum(session_seconds)) AS duration
    FROM events
    WHERE site = /*site*/('example.com')
        AND ts >= /*from*/('2024-01-01 00:00:00')
        AND ts < /*until*/('2024-02-01 00:00:00')
        AND session_id != 0
        AND session_start >= /*from*/('2024-01-01 00:00:00')
        AND session_start < /*to*/('2024-01-31 00:00:00')
        AND /*scope*/(1)
    GROUP BY day
)
GROUP BY day
ORDER BY day;
