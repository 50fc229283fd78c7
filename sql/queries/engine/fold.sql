-- Wraps a breakdown (`rows`: value, visitors, visits, pageviews, events,
-- bounces, duration): rows with fewer than `k` visitors are summed into one
-- row (folded = 1, value ''), which comes first; then the `limit` largest.
SELECT
    folded,
    label AS value,
    toUInt64(sum(visitors)) AS visitors,
    toUInt64(sum(visits)) AS visits,
    toUInt64(sum(pageviews)) AS pageviews,
    toUInt64(sum(events)) AS events,
    toInt64(sum(bounces)) AS bounces,
    toUInt64(sum(duration)) AS duration
FROM
(
    SELECT
        toUInt8(visitors < /*k*/(0)) AS folded,
        if(folded = 1, '', toString(value)) AS label,
        visitors, visits, pageviews, events, bounces, duration
    FROM /*rows*/(SELECT 'x' AS value, toUInt64(1) AS visitors, toUInt64(1) AS visits, toUInt64(1) AS pageviews, toUInt64(0) AS events, toInt64(1) AS bounces, toUInt64(0) AS duration)
)
GROUP BY folded, label
ORDER BY folded DESC, visitors DESC, value
LIMIT /*limit*/11;
