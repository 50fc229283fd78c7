/*
 * Headcount tracker: counts people without knowing who they are.
 *
 *   <script defer data-domain="example.com" src="https://stats.example.com/js/script.js"></script>
 *
 * This readable file is the source. `scripts/build-tracker.sh` minifies it
 * with terser into `tracker/script.min.js`, which Headcount embeds and serves
 * at /js/script.js; the browser tests fail when the two disagree.
 *
 * What it sends: Plausible Events API payloads (text/plain JSON) with
 * navigator.sendBeacon, falling back to fetch(..., {keepalive: true}), so
 * nothing waits for the reply and a click that leaves the page still counts.
 *
 * What it never does: set a cookie, write an identifier to any storage, or
 * read fingerprinting APIs (canvas, fonts, plugins, screen, hardware). The
 * only thing it ever stores is the visitor's own opt-out choice, the constant
 * `localStorage.headcount_ignore` = "true" (or "false" after opting back in)
 * on the site's origin.
 *
 * Options (attributes of the <script> element):
 *   data-domain           site as listed under [[sites]]; comma-separated for
 *                         several (Headcount defaults to the page's host)
 *   data-api              events endpoint (default: ../api/event next to the script)
 *   data-hash             hash-based routing: #fragment changes are page views
 *   data-file-types       extensions counted as downloads, comma-separated
 *                         (replaces the default list below)
 *   data-allow-localhost  also count on localhost, 127.x.x.x, [::1] and file:
 *   data-allow-automation also count when navigator.webdriver is true
 *
 * Every byte counts: the gzipped script must stay under 1 KB (a Rust test
 * checks), so features are written for size, and each says why it is here.
 */
(() => {
  const script = document.currentScript;
  const data = script.dataset;
  const endpoint = data.api || new URL('../api/event', script.src);
  const hashMode = data.hash != null;
  const fileTypes = RegExp(`\\.(${(data.fileTypes || 'pdf|docx?|xlsx?|pptx?|od[tsp]|rtf|csv|zip|rar|7z|gz|exe|dmg|apk|mp[34]').replace(/,/g, '|')})$`, 'i');

  // The one flag a visitor can set: by hand, from the site's own privacy
  // page, or from Headcount's /opt-out page, which links back to the site
  // with #headcount_ignore=true (or =false to undo). The fragment never
  // reaches any server. Storage may be blocked: then there is no flag.
  let storage = {};
  try {
    storage = localStorage;
  } catch {}
  const choice = /#headcount_ignore=(true|false)/.exec(location.hash);
  if (choice) storage.headcount_ignore = choice[1];

  // Reasons not to count at all; the opt-out flag is read at every event.
  // A present data-allow-* attribute is "" (falsy), an absent one undefined.
  // An empty host name is a file: page.
  const declined =
    navigator.doNotTrack == '1' ||
    navigator.globalPrivacyControl ||
    (data.allowLocalhost ?? /^(localhost|127\.|\[::1]|$)/.test(location.hostname)) ||
    (data.allowAutomation ?? navigator.webdriver);

  // headcount(name, {props, revenue, interactive, u}). The options go into
  // the payload as they are: Headcount reads `props`, `revenue` and
  // `interactive` like `p`, `$` and `i`, and `u` replaces the page URL. The
  // engagement event passes its `sd` and `e` the same way. Without
  // data-domain, `d` is left out and Headcount takes the page's host. `w`,
  // the viewport width, gives the screen class (mobile/tablet/laptop/desktop).
  // No callback: sendBeacon outlives the page, so nothing has to wait.
  const track = (name, options = {}) => {
    const body = JSON.stringify({
      u: location.href,
      ...options,
      n: name,
      d: data.domain,
      r: document.referrer,
      w: innerWidth,
      h: hashMode
    });
    if (!declined && storage.headcount_ignore != 'true')
      // A string body goes as text/plain: no CORS preflight.
      navigator.sendBeacon(endpoint, body) || fetch(endpoint, { method: 'POST', body, keepalive: true });
  };

  // Engagement: each time the page is hidden or left, how long it was
  // visible since it was last shown and how far down it has been seen, as
  // Plausible's `engagement` event (`e` milliseconds, `sd` scroll depth in
  // percent). `shownAt` is 0 while hidden, so nothing is sent twice.
  let pageUrl, pageKey, shownAt, depth;
  const scrolled = () => {
    depth = Math.max(depth, ((scrollY + innerHeight) * 100) / document.documentElement.scrollHeight);
  };
  const engagement = () => {
    shownAt && track('engagement', { u: pageUrl, sd: depth, e: Date.now() - shownAt });
    shownAt = 0;
  };

  // A page view whenever the path (with data-hash, also the fragment) changes.
  const pageview = () => {
    const key = location.pathname + (hashMode ? location.hash : '');
    if (key != pageKey) {
      engagement();
      pageKey = key;
      pageUrl = location.href;
      shownAt = Date.now();
      depth = 0;
      scrolled();
      track('pageview');
    }
  };

  // Downloads and outbound links, as the link's address without query or
  // fragment (they may carry personal tokens). Left and middle clicks.
  const click = (event) => {
    const link = event.target.closest('a');
    const url = link?.host && event.button < 2 && link.origin + link.pathname;
    const name =
      url && (link.hasAttribute('download') || fileTypes.test(url) ? 'File Download' : link.host != location.host && 'Outbound Link: Click');
    name && track(name, { props: { url } });
  };

  for (const method of ['pushState', 'replaceState']) {
    const original = history[method];
    history[method] = (...args) => {
      original.apply(history, args);
      pageview();
    };
  }
  // Also fired when the #fragment changes, which data-hash counts.
  addEventListener('popstate', pageview);
  // visibilitychange and scroll bubble from the document to the window.
  // Leaving the page hides it too (browsers fire visibilitychange first).
  addEventListener('visibilitychange', () => {
    document.hidden ? engagement() : pageKey ? (shownAt = Date.now()) : pageview();
  });
  addEventListener('scroll', scrolled);
  addEventListener('click', click, true);
  addEventListener('auxclick', click, true);

  // A page opened in the background, or prerendered, counts when it is
  // first shown, not when it is fetched.
  document.hidden || pageview();

  // A page served with status 404 also sends a `404` event (its path is the
  // event's page). Browsers without responseStatus (Safari): call
  // headcount('404') on the error page.
  performance.getEntries()[0]?.responseStatus == 404 && track('404');

  // Calls made before the script loaded wait in headcount.q.
  for (const args of window.headcount?.q || []) track(...args);
  window.headcount = track;
})();
