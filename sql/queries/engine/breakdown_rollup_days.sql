-- Per value and day of a dimension, from rollup_daily (no filters): what
-- the engine keeps of finished days, so that a breakdown over 30 days
-- reads only today and yesterday again. Summed per value in Rust exactly
-- as breakdown_rollup.sql sums in SQL (the engine uses that one when a
-- dimension has more than `limit` rows in the range).
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
LIMIT /*limit*/100000;
