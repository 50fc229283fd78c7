// The official Plausible tracker (npm @plausible-analytics/tracker), loaded
// as an ES module with its `endpoint` pointed at Headcount's /api/event:
// a Plausible user switches by changing that one URL.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HEADCOUNT, SITE, context, find, pageUrl, recordBeacons, screenshot, sharedBrowser, waitForEvents } from './lib.mjs';

const browser = sharedBrowser();


test('the official Plausible tracker records pageviews, SPA navigation, custom events, downloads, outbound links and engagement', async () => {
  const ctx = await context(browser());
  const page = await ctx.newPage();
  const beacons = recordBeacons(page);
  await page.goto(pageUrl('plausible', '/first', { plausible: 1 }));
  await waitForEvents('plausible', (rows) => find(rows, 'pageview', '/t/plausible/first'));
  await screenshot(page, 'plausible');

  await page.click('#signup');
  await page.click('#spa'); // pushState
  await page.click('#download');
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await page.waitForFunction(() => window.scrollY > 0);
  await page.click('#outbound'); // leaves the page
  await page.waitForURL(/\/outside\?/);

  const rows = await waitForEvents(
    'plausible',
    (rows) =>
      find(rows, 'Outbound Link: Click') && find(rows, 'engagement', '/t/plausible/second') && find(rows, 'pageview', '/t/plausible/second'),
  );
  const signup = find(rows, 'Signup', '/t/plausible/first');
  assert.deepEqual(signup.props, { plan: 'pro' });
  assert.deepEqual([signup.revenue_micros, signup.revenue_currency], ['9990000', 'EUR']);
  assert.equal(find(rows, 'File Download', '/t/plausible/second').props.url, `${SITE}/files/report.pdf`);
  // Plausible sends the whole link; Headcount drops its query and fragment.
  assert.equal(find(rows, 'Outbound Link: Click').props.url, `http://localhost:${new URL(SITE).port}/outside`);
  const engaged = rows.filter((r) => r.name === 'engagement');
  assert.ok(engaged.length >= 1);
  for (const e of engaged) {
    assert.equal(e.interactive, 0);
    assert.ok('scroll_depth' in e.props && 'engaged_ms' in e.props, JSON.stringify(e));
  }

  // What it sent: the Plausible Events API payload, text/plain, to Headcount.
  const first = JSON.parse(beacons[0].body);
  assert.equal(beacons[0].url, `${HEADCOUNT}/api/event`);
  assert.deepEqual(Object.keys(first).sort(), ['d', 'n', 'r', 'u', 'v']);
  assert.equal(first.d, '127.0.0.1');
  assert.equal(await beacons[0].request.headerValue('content-type'), 'text/plain');
  assert.deepEqual(await ctx.cookies(), []);
  await ctx.close();
});
