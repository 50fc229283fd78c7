-- One row per value of an event-level dimension (page, event, property,
-- download, outbound link, screen) from raw events, for any filters.
-- `dim` is the value's expression, `dim_filter` the events that have one.
-- Visitors (and visits: distinct visits with such an event) are counted
-- per day and summed, like the rollup.
SELECT
    value,
    toUInt64(sum(visitors)) AS visitors,
    toUInt64(sum(visits)) AS visits,
    toUInt64(sum(pageviews)) AS pageviews,
    toUInt64(sum(events)) AS events,
    toInt64(0) AS bounces,
    toUInt64(0) AS duration
FROM
(
    SELECT
        /*dim*/(pathname) AS value,
        toDate(ts) AS day,
        uniq(visitor_id) AS visitors,
        uniqIf(session_id, session_id != 0) AS visits,
        countIf(name = 'pageview') AS pageviews,
        countIf(name != 'pageview') AS events
    FROM events
    WHERE site = /*site*/('example.com')
        AND ts >= /*from*/('2024-01-01 00:00:00')
        AND ts < /*to*/('2024-01-31 00:00:00')
        AND name != 'engagement'
        AND /*dim_filter*/(name = 'pageview')
        AND /*visit_scope*/(1)
        AND /*match*/(1)
    GROUP BY value, day
)
GROUP BY value;
