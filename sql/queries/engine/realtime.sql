-- Visitors in the last five minutes (engagement events are not activity).
SELECT uniq(visitor_id) AS visitors
FROM events
WHERE site = /*site*/('example.com')
    AND ts >= /*since*/('2024-01-01 00:00:00')
    AND name != 'engagement';
