-- One row per value of a dimension, from rollup_daily (no filters).
-- Visitors are summed over days (visitor-days). For session-constant
-- dimensions visits, bounces and duration are the visits started in the
-- range (`visits_merge` = sumMerge(visits)); for event-level ones (page, event,
-- screen) visits are the distinct visits with such an event, per day
-- (`visits_merge` = uniqIfMerge(sessions)).
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
        value,
        day,
        uniqMerge(visitors) AS visitors,
        /*visits_merge*/(sumMerge(visits)) AS visits,
        sumMerge(pageviews) AS pageviews,
        sumMerge(events) AS events,
        sumMerge(bounces) AS bounces,
        sumMerge(duration) AS duration
    FROM rollup_daily
    PREWHERE site = /*site*/('example.com')
        AND dim = /*dim_name*/('source')
    WHERE day >= /*first_day*/('2024-01-01')
        AND day <= /*last_day*/('2024-01-30')
    GROUP BY value, day
)
GROUP BY value;
