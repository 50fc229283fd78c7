-- The whole site's hourly time series from rollup_hourly (daily and
-- monthly series are built from days_*.sql). bucket: unix seconds of the
-- hour's start; visitors and pageviews by event time, visits by start.
SELECT
    toUInt64(toUInt32(hour)) AS bucket,
    uniqMerge(visitors) AS visitors,
    sumMerge(visits) AS visits,
    sumMerge(pageviews) AS pageviews
FROM rollup_hourly
WHERE site = /*site*/('example.com')
    AND hour >= /*from*/('2024-01-01 00:00:00')
    AND hour < /*to*/('2024-01-03 00:00:00')
GROUP BY bucket
ORDER BY bucket;
