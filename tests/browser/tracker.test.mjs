// Headcount's tracker (/js/script.js) in Debian's Chromium: what it records,
// that it stores nothing, and everything that stops it.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { MINIFIED, minifyTracker } from './build-tracker.mjs';
import {
  HEADCOUNT,
  SITE,
  context,
  events,
  find,
  names,
  pageUrl,
  recordBeacons,
  screenshot,
  sharedBrowser,
  waitForEvents,
} from './lib.mjs';

const browser = sharedBrowser();

const sitePort = new URL(SITE).port;

/** What a page keeps on the site's origin and in the browser's cookie jar. */
async function stored(page) {
  const [local, session] = await page.evaluate(() => [{ ...localStorage }, { ...sessionStorage }]);
  return { local, session, cookies: await page.context().cookies() };
}

/**
 * Assert a test recorded nothing: no request reached Headcount's endpoints
 * (when `beacons` is given), and once a later page view from a clean
 * browser context is in ClickHouse, no row of `name` is.
 */
async function assertNothingRecorded(name, beacons) {
  if (beacons) assert.deepEqual(beacons.map((b) => b.url), [], 'the tracker sent nothing');
  const ctx = await context(browser());
  const control = await ctx.newPage();
  await control.goto(pageUrl(`${name}-control`, '/'));
  await waitForEvents(`${name}-control`, (rows) => find(rows, 'pageview'));
  await ctx.close();
  assert.deepEqual(names(await events(name)), [], `nothing of ${name} was recorded`);
}

async function until(check, what, timeout = 10000) {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function metric(reason) {
  const text = await (await fetch(`${HEADCOUNT}/metrics`)).text();
  const m = text.match(new RegExp(`^headcount_events_dropped_total\\{reason="${reason}"\\} (\\d+)$`, 'm'));
  return Number(m?.[1] ?? NaN);
}

test('the committed minified tracker is built from tracker/script.js', async () => {
  assert.equal(await readFile(MINIFIED, 'utf8'), await minifyTracker(), 'run scripts/build-tracker.sh');
});

test('pageviews, SPA navigation, queued and custom events, downloads, outbound links, engagement; nothing stored', async () => {
  const ctx = await context(browser());
  const page = await ctx.newPage();
  page.on('popup', (p) => p.close()); // the tab a middle click opens
  const beacons = recordBeacons(page);
  await page.goto(pageUrl('basic', '/first', { queue: 1 }));
  await waitForEvents('basic', (rows) => find(rows, 'pageview', '/t/basic/first'));
  await screenshot(page, 'tracker-page');

  await page.click('#signup');
  await page.click('#spa'); // history.pushState
  await page.click('#spa-replace'); // history.replaceState
  await page.click('#download'); // .pdf with a query string
  await page.click('#docx', { button: 'middle' }); // auxclick
  await page.click('#export'); // download attribute
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await page.waitForFunction(() => window.scrollY > 0);
  await page.waitForTimeout(50);
  await screenshot(page, 'tracker-scrolled');

  assert.deepEqual(await stored(page), { local: {}, session: {}, cookies: [] }, 'no cookie, no storage');
  await page.click('#outbound'); // leaves the page: outbound click, then engagement
  await page.waitForURL(/\/outside\?/);

  const rows = await waitForEvents(
    'basic',
    (rows) => find(rows, 'Outbound Link: Click') && rows.filter((r) => r.name === 'engagement').length >= 3,
  );
  const pv = rows.filter((r) => r.name === 'pageview').map((r) => r.pathname);
  assert.deepEqual(pv.sort(), ['/t/basic/first', '/t/basic/replaced', '/t/basic/second']);
  assert.deepEqual(find(rows, 'Queued').props, { when: 'before load' });
  const signup = find(rows, 'Signup', '/t/basic/first');
  assert.deepEqual(signup.props, { plan: 'pro' });
  assert.deepEqual([signup.revenue_micros, signup.revenue_currency], ['9990000', 'EUR']);
  const downloads = rows.filter((r) => r.name === 'File Download').map((r) => r.props.url).sort();
  assert.deepEqual(downloads, [
    `http://127.0.0.1:${sitePort}/export`,
    `http://127.0.0.1:${sitePort}/files/plan.docx`,
    `http://127.0.0.1:${sitePort}/files/report.pdf`,
  ]);
  const outbound = find(rows, 'Outbound Link: Click');
  assert.deepEqual(outbound.props, { url: `http://localhost:${sitePort}/outside` }, 'no query string, no fragment');
  assert.equal(rows.filter((r) => r.name === 'Outbound Link: Click').length, 1, 'same-site links are no outbound links');

  const engagement = rows.filter((r) => r.name === 'engagement');
  for (const e of engagement) {
    assert.equal(e.interactive, 0);
    assert.ok(Number(e.props.engaged_ms) >= 0 && Number(e.props.scroll_depth) > 0, JSON.stringify(e));
  }
  const left = engagement.filter((e) => e.pathname === '/t/basic/replaced');
  assert.ok(left.some((e) => e.props.scroll_depth === '100'), `scrolled to the bottom: ${JSON.stringify(left)}`);
  assert.ok(find(rows, 'engagement', '/t/basic/first'), 'SPA navigation ends the previous page');
  assert.ok(rows.every((r) => r.screen_width === 1280), 'viewport width');

  // Every beacon went to Headcount's own /api/event (the one sent while the
  // page was being left is the browser's, no longer the page's, to observe).
  assert.ok(beacons.length >= rows.length - 1, `${beacons.length} beacons, ${rows.length} rows`);
  for (const b of beacons) {
    assert.equal(new URL(b.url).origin + new URL(b.url).pathname, `${HEADCOUNT}/api/event`);
    assert.equal(JSON.parse(b.body).d, '127.0.0.1');
  }
  assert.deepEqual(await ctx.cookies(), [], 'no cookie on any origin');
  await ctx.close();
});

test('hash routing with data-hash', async () => {
  const ctx = await context(browser());
  const page = await ctx.newPage();
  await page.goto(pageUrl('hash', '/app', { hash: 1 }));
  await page.click('#hash');
  const rows = await waitForEvents('hash', (rows) => find(rows, 'pageview', '/t/hash/app#/settings'));
  assert.ok(find(rows, 'pageview', '/t/hash/app'), names(rows).join());
  await ctx.close();
});

test('a 404 page sends a 404 event', async () => {
  const ctx = await context(browser());
  const page = await ctx.newPage();
  const response = await page.goto(pageUrl('notfound', '/missing', { status: 404 }));
  assert.equal(response.status(), 404);
  const rows = await waitForEvents('notfound', (rows) => find(rows, '404') && find(rows, 'pageview'));
  assert.equal(find(rows, '404').pathname, '/t/notfound/missing');
  await ctx.close();
});

test('data-file-types replaces the download list', async () => {
  const ctx = await context(browser());
  const page = await ctx.newPage();
  await page.goto(pageUrl('types', '/', { types: 'docx,csv' }));
  await page.click('#download'); // .pdf: not listed now
  await page.click('#docx');
  const rows = await waitForEvents('types', (rows) => find(rows, 'File Download'));
  await page.waitForTimeout(300);
  const downloads = (await events('types', "name = 'File Download'")).map((r) => r.props.url);
  assert.deepEqual(downloads, [`http://127.0.0.1:${sitePort}/files/plan.docx`], names(rows).join());
  await ctx.close();
});

test('data-api sends to another endpoint', async () => {
  const ctx = await context(browser());
  const page = await ctx.newPage();
  const beacons = recordBeacons(page);
  await page.goto(pageUrl('proxy', '/', { api: 'proxy' }));
  await waitForEvents('proxy', (rows) => find(rows, 'pageview'));
  assert.deepEqual([...new Set(beacons.map((b) => b.url))], [`${SITE}/proxy/api/event`]);
  await ctx.close();
});

test('Do-Not-Track in the browser: nothing is sent', async () => {
  const ctx = await context(browser());
  await ctx.addInitScript(() => Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' }));
  const page = await ctx.newPage();
  const beacons = recordBeacons(page);
  await page.goto(pageUrl('dnt', '/'));
  await page.click('#signup');
  await page.click('#download');
  await assertNothingRecorded('dnt', beacons);
  await ctx.close();
});

test('Global Privacy Control in the browser: nothing is sent', async () => {
  const ctx = await context(browser());
  await ctx.addInitScript(() => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true }));
  const page = await ctx.newPage();
  const beacons = recordBeacons(page);
  await page.goto(pageUrl('gpc', '/'));
  await page.click('#signup');
  await assertNothingRecorded('gpc', beacons);
  await ctx.close();
});

test('Sec-GPC and DNT headers: Headcount drops and counts what arrives', async () => {
  const before = await metric('dnt');
  for (const [name, headers] of [
    ['secgpc', { 'Sec-GPC': '1' }],
    ['dntheader', { DNT: '1' }],
  ]) {
    // The page's script does not see the setting; the server does.
    const ctx = await context(browser(), { extraHTTPHeaders: headers });
    const page = await ctx.newPage();
    const beacons = recordBeacons(page);
    await page.goto(pageUrl(name, '/'));
    await page.click('#signup');
    await until(() => beacons.length >= 2, 'the page view and the event were sent');
    await assertNothingRecorded(name);
    await ctx.close();
  }
  assert.ok((await metric('dnt')) >= before + 4, 'counted as dropped for dnt');
});

test('opting out on /opt-out (Russian) stops counting on the site; opting in restarts it', async () => {
  const ctx = await context(browser());
  const page = await ctx.newPage();
  const target = pageUrl('optout', '/page');
  await page.goto(`${HEADCOUNT}/opt-out?lang=ru&return=${encodeURIComponent(target)}`);
  assert.equal(await page.getAttribute('html', 'lang'), 'ru');
  await screenshot(page, 'opt-out-ru');
  const beacons = recordBeacons(page);
  await page.click('#opt-out');
  await page.waitForURL(/#headcount_ignore=true$/);
  assert.deepEqual((await stored(page)).local, { headcount_ignore: 'true' }, 'one constant flag, on the site origin');
  await page.click('#signup');
  await page.goto(pageUrl('optout', '/later'));
  await page.click('#download');
  assert.deepEqual(await ctx.cookies(), []);
  await assertNothingRecorded('optout', beacons);

  // The English page, and back in.
  await page.goto(`${HEADCOUNT}/opt-out?return=${encodeURIComponent(target)}`);
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await screenshot(page, 'opt-out-en');
  await page.click('#opt-in');
  await page.waitForURL(/#headcount_ignore=false$/);
  await waitForEvents('optout', (rows) => find(rows, 'pageview', '/t/optout/page'));
  await ctx.close();
});

for (const [name, flag, what] of [
  ['local', 'nolocal', 'on localhost without data-allow-localhost'],
  ['robot', 'noauto', 'in an automated browser without data-allow-automation'],
]) {
  test(`no tracking ${what}`, async () => {
    const ctx = await context(browser());
    const page = await ctx.newPage();
    assert.equal(await page.evaluate(() => navigator.webdriver), true, 'the browser is automated');
    const beacons = recordBeacons(page);
    await page.goto(pageUrl(name, '/', { [flag]: 1 }));
    await page.click('#signup');
    await assertNothingRecorded(name, beacons);
    await ctx.close();
  });
}

test('without JavaScript the <noscript> pixel counts the page', async () => {
  const ctx = await context(browser(), { javaScriptEnabled: false });
  const page = await ctx.newPage();
  const beacons = recordBeacons(page);
  await page.goto(pageUrl('noscript', '/page'));
  const rows = await waitForEvents('noscript', (rows) => find(rows, 'pageview', '/t/noscript/page'));
  assert.equal(rows.length, 1);
  assert.ok(beacons.every((b) => b.url.startsWith(`${HEADCOUNT}/p.gif?`)), beacons.map((b) => b.url).join());
  await screenshot(page, 'noscript');
  assert.deepEqual(await ctx.cookies(), []);
  await ctx.close();
});
