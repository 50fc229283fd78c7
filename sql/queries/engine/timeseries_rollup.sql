-- A time series from the rollup (whole site, or one session-constant
-- dimension value). bucket: unix seconds of the bucket's start (hour, day
-- or month, UTC); visitors and pageviews by event time, visits by start.
SELECT
    toUInt64(multiIf(
        /*interval*/('day') = 'month', toUInt64(toUInt32(toStartOfMonth(hour))) * 86400,
        /*interval*/('day') = 'day', toUInt64(toUInt32(toDate(hour))) * 86400,
        toUInt64(toUInt32(hour)))) AS bucket,
    uniqMerge(visitors) AS visitors,
    sumMerge(visits) AS visits,
    sumMerge(pageviews) AS pageviews
FROM rollup_hourly
WHERE site = /*site*/('example.com')
    AND dim = /*dim_name*/('')
    AND value = /*dim_value*/('')
    AND hour >= /*from*/('2024-01-01 00:00:00')
    AND hour < /*to*/('2024-01-31 00:00:00')
GROUP BY bucket
ORDER BY bucket;
