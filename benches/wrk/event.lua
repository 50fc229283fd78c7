-- wrk script: POST one Plausible Events API pageview to /api/event, as
-- Headcount's and Plausible's trackers send it (JSON as text/plain).
--
--   wrk -t2 -c128 -d10s -s benches/wrk/event.lua http://127.0.0.1:45080/api/event
--
-- Same User-Agent as the /p.gif runs in benches/run-baselines.sh, so the two
-- endpoints differ only in how the event arrives.
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
wrk.headers["User-Agent"] =
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
wrk.body = '{"n":"pageview","u":"https://example.com/hc-wrk/blog/some-post","d":"example.com","r":"https://www.google.com/","w":1440}'
