// The test website: pages that embed Headcount's snippet the way a real
// site does, served from a different origin than Headcount.
//
//   node tests/browser/site.mjs PORT HEADCOUNT_URL
//
// GET /t/<name>/<path>?<flags> is a test page. Flags choose the snippet:
//   noauto    leave out data-allow-automation (the browser is automated)
//   nolocal   leave out data-allow-localhost (the site is on 127.0.0.1)
//   hash      data-hash (hash-based routing)
//   types=x   data-file-types="x"
//   api=proxy data-api pointing at this site's /proxy/api/event
//   queue     the headcount() queue stub, with one call before the script loads
//   plausible the official Plausible tracker (npm) instead of Headcount's
//   status=N  answer with HTTP status N (404 pages)
// The <noscript> pixel is on every page.
//
// GET /files/* and /export answer attachments (download links), /outside is
// the target of outbound links (on http://localhost:PORT, another host),
// /vendor/plausible.js is @plausible-analytics/tracker from node_modules,
// POST /proxy/api/event forwards to Headcount (a site proxying the API).
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';

const [port, headcount] = [Number(process.argv[2]), process.argv[3]];
if (!port || !headcount) {
  console.error('usage: node site.mjs PORT HEADCOUNT_URL');
  process.exit(2);
}
const plausibleJs = new URL('./node_modules/@plausible-analytics/tracker/plausible.js', import.meta.url);
const attr = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

function page(url, flags) {
  const has = (f) => flags.has(f);
  const site = `http://127.0.0.1:${port}`;
  const pixel = `${headcount}/p.gif?d=127.0.0.1&u=${encodeURIComponent(site + url.pathname)}`;
  let tracker;
  if (has('plausible')) {
    tracker = `<script type="module">
  import { init, track } from '/vendor/plausible.js';
  window.__plausible = true; // Plausible's own switch for automated browsers
  init({ domain: '127.0.0.1', endpoint: '${headcount}/api/event', captureOnLocalhost: true,
         outboundLinks: true, fileDownloads: true, logging: false });
  window.headcount = (name, options) => track(name, options || {});
</script>`;
  } else {
    const a = ['defer', 'data-domain="127.0.0.1"'];
    if (!has('nolocal')) a.push('data-allow-localhost');
    if (!has('noauto')) a.push('data-allow-automation');
    if (has('hash')) a.push('data-hash');
    if (flags.get('types')) a.push(`data-file-types="${attr(flags.get('types'))}"`);
    if (flags.get('api') === 'proxy') a.push(`data-api="${site}/proxy/api/event"`);
    tracker = `<script ${a.join(' ')} src="${headcount}/js/script.js"></script>`;
    if (has('queue')) {
      tracker =
        `<script>window.headcount = window.headcount || function () { (headcount.q = headcount.q || []).push(arguments) };
  headcount('Queued', { props: { when: 'before load' } });</script>\n` + tracker;
    }
  }
  const base = url.pathname.split('/').slice(0, 3).join('/');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Headcount test site</title>
${tracker}
<style>
  body { font: 16px/1.5 system-ui, sans-serif; margin: 2rem; }
  nav a, nav button { display: inline-block; margin: 0 1rem .5rem 0; }
  .tall { height: 3000px; background: linear-gradient(#fff, #dde); }
</style>
</head>
<body>
<h1>Headcount test site</h1>
<p>Page <code id="path">${attr(url.pathname)}</code>, flags <code>${attr(url.search || 'none')}</code></p>
<nav>
  <a id="spa" href="${base}/second" onclick="event.preventDefault(); history.pushState({}, '', this.href); document.getElementById('path').textContent = location.pathname">SPA: second page</a>
  <a id="spa-replace" href="${base}/replaced" onclick="event.preventDefault(); history.replaceState({}, '', this.href)">SPA: replaceState</a>
  <a id="hash" href="#/settings">Hash route</a>
  <a id="outbound" href="http://localhost:${port}/outside?token=secret#frag">Outbound link</a>
  <a id="download" href="/files/report.pdf?token=secret">Download PDF</a>
  <a id="docx" href="/files/plan.docx">Download DOCX</a>
  <a id="export" href="/export" download>Export (download attribute)</a>
  <a id="inside" href="${base}/inside">Internal link</a>
  <button id="signup" onclick="headcount('Signup', { props: { plan: 'pro' }, revenue: { amount: 9.99, currency: 'EUR' } })">Sign up</button>
</nav>
<noscript><img id="pixel" src="${attr(pixel)}" alt="" width="1" height="1"></noscript>
<div class="tall">Scroll down</div>
<p id="bottom">Bottom of the page</p>
</body>
</html>
`;
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url, `http://${req.headers.host}`);
  try {
    if (url.pathname.startsWith('/t/')) {
      const flags = url.searchParams;
      res.writeHead(Number(flags.get('status')) || 200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(page(url, flags));
    }
    if (url.pathname.startsWith('/files/') || url.pathname === '/export') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-disposition': 'attachment' });
      return res.end('not really a file\n');
    }
    if (url.pathname === '/outside') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end('<!doctype html><title>Elsewhere</title><h1>Another site</h1>');
    }
    if (url.pathname === '/vendor/plausible.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      return res.end(await readFile(plausibleJs));
    }
    if (url.pathname === '/proxy/api/event' && req.method === 'POST') {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const upstream = await fetch(`${headcount}/api/event`, {
        method: 'POST',
        body: Buffer.concat(chunks),
        headers: { 'content-type': 'text/plain', 'user-agent': req.headers['user-agent'] || '' },
      });
      res.writeHead(upstream.status, {
        'x-headcount-event': upstream.headers.get('x-headcount-event') || '',
        'x-proxied': '1',
        'access-control-allow-origin': '*',
      });
      return res.end(await upstream.text());
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(e));
  }
});
server.listen(port, '127.0.0.1', () => console.log(`test site on http://127.0.0.1:${port} (Headcount ${headcount})`));
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => server.close(() => process.exit(0)));
