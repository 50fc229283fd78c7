-- The whole site's numbers per UTC day, from rollup_hourly: visitors,
-- pageviews and events by the day they happened; visits, bounces and
-- duration by the day the visits started. Headline numbers are the sums of
-- these days (visitors over several days are visitor-days: ids change
-- daily), daily and monthly charts are these days.
-- Slots (see src/stats/template.rs): /*name*/(default) is replaced by a
-- bound value or a generated expression; as written the file runs as is.
SELECT
    toDate(hour) AS day,
    uniqMerge(visitors) AS visitors,
    sumMerge(pageviews) AS pageviews,
    sumMerge(events) AS events,
    sumMerge(visits) AS visits,
    sumMerge(bounces) AS bounces,
    sumMerge(duration) AS duration
FROM rollup_hourly
WHERE site = /*site*/('example.com')
    AND hour >= /*from*/('2024-01-01 00:00:00')
    AND hour < /*to*/('2024-01-31 00:00:00')
GROUP BY day
ORDER BY day;
