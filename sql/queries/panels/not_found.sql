-- Pages that answered "404 Not Found" (the tracker's `404` event), by
-- visitors. A custom panel: declared in dashboards/overview.toml as
-- query = "not_found"; result columns value, visitors, visits, pageviews,
-- events; slots as documented in src/stats/panels.rs.
SELECT
    pathname AS value,
    uniq(visitor_id) AS visitors,
    uniqIf(session_id, session_id != 0) AS visits,
    toUInt64(0) AS pageviews,
    count() AS events
FROM events
WHERE site = /*site*/('example.com')
    AND ts >= /*from*/('2024-01-01 00:00:00')
    AND ts < /*to*/('2024-01-31 00:00:00')
    AND name = '404'
    AND /*filters*/(1)
GROUP BY value;
