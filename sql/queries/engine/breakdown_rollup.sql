-- One row per value of a dimension, from the rollup (no filters). For
-- session-constant dimensions (`per_visit` = 1) visits, bounces and
-- duration are the visits started in the range; for event-level ones
-- (page, event, screen) visits are the distinct visits with such an event.
SELECT
    value,
    uniqMerge(visitors) AS visitors,
    if(/*per_visit*/(1) = 1, sumMerge(visits), uniqIfMerge(sessions)) AS visits,
    sumMerge(pageviews) AS pageviews,
    sumMerge(events) AS events,
    sumMerge(bounces) AS bounces,
    sumMerge(duration) AS duration
FROM rollup_hourly
WHERE site = /*site*/('example.com')
    AND dim = /*dim_name*/('source')
    AND hour >= /*from*/('2024-01-01 00:00:00')
    AND hour < /*to*/('2024-01-31 00:00:00')
GROUP BY value;
