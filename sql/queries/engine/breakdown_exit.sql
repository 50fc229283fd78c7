-- Exit pages: the last pageview of each visit started in the range (raw
-- events; a visit's exit page is only known once it ends, so no rollup).
-- Visitors are counted per start day and summed; pageviews and events are
-- those of the visits, whole.
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
        exit_page AS value,
        toDate(start) AS day,
        uniq(visitor) AS visitors,
        count() AS visits,
        sum(pages) AS pageviews,
        sum(custom) AS events,
        sum(bounce) AS bounces,
        sum(seconds) AS duration
    FROM
    (
        SELECT
            session_id,
            argMaxIf(pathname, ts, name = 'pageview') AS exit_page,
            any(visitor_id) AS visitor,
            min(session_start) AS start,
            countIf(name = 'pageview' AND /*match*/(1)) AS pages,
            countIf(name NOT IN ('pageview', 'engagement') AND /*match*/(1)) AS custom,
            sum(session_bounce) AS bounce,
            sum(session_seconds) AS seconds,
            max(session_visit) AS started
        FROM events
        WHERE site = /*site*/('example.com')
            AND session_id != 0
            AND session_start >= /*from*/('2024-01-01 00:00:00')
            AND session_start < /*to*/('2024-01-31 00:00:00')
            AND ts >= /*from*/('2024-01-01 00:00:00')
            AND ts < /*until*/('2024-02-01 00:00:00')
            AND /*scope*/(1)
        GROUP BY session_id
        HAVING started = 1 AND countIf(name = 'pageview') > 0
    )
    GROUP BY value, day
)
GROUP BY value;
