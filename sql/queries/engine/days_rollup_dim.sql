-- Per UTC day, the numbers of the visits with one session-constant value
-- (dim 'source', value 'Google'), from rollup_daily: whole visits, so
-- visits, bounces and duration are exact for the filter too.
SELECT
    day,
    uniqMerge(visitors) AS visitors,
    sumMerge(pageviews) AS pageviews,
    sumMerge(events) AS events,
    sumMerge(visits) AS visits,
    sumMerge(bounces) AS bounces,
    sumMerge(duration) AS duration
FROM rollup_daily
PREWHERE site = /*site*/('example.com')
    AND dim = /*dim_name*/('source')
    AND value = /*dim_value*/('Google')
WHERE day >= /*first_day*/('2024-01-01')
    AND day <= /*last_day*/('2024-01-30')
GROUP BY day
ORDER BY day;
