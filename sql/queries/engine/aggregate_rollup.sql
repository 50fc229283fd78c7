-- Headline numbers from the rollup, for the whole site (dim '', value '')
-- or for the visits with one session-constant value (dim 'source', value
-- 'Google'). Visitors, pageviews and events count the hours the events
-- happened; visits, bounces and duration the hours the visits started.
-- Slots (see src/stats/template.rs): /*name*/(default) is replaced by a
-- bound value or a generated expression; as written the file runs as is.
SELECT
    uniqMerge(visitors) AS visitors,
    sumMerge(pageviews) AS pageviews,
    sumMerge(events) AS events,
    sumMerge(visits) AS visits,
    sumMerge(bounces) AS bounces,
    sumMerge(duration) AS duration
FROM rollup_hourly
WHERE site = /*site*/('example.com')
    AND dim = /*dim_name*/('')
    AND value = /*dim_value*/('')
    AND hour >= /*from*/('2024-01-01 00:00:00')
    AND hour < /*to*/('2024-01-31 00:00:00');
