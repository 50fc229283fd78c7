// The operators' dashboard in Debian's Chromium: log in, read the numbers
// of known events, click a row to filter, change the range and the
// language, share a read-only link and open it logged out. Screenshots
// (light, dark, mobile, Russian, shared) land in test-artifacts/browser/.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HEADCOUNT, context, screenshot, sharedBrowser } from './lib.mjs';

const browser = sharedBrowser();
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// The binary the runner built (it honours CARGO_TARGET_DIR).
const BINARY = process.env.HEADCOUNT_BIN || join(ROOT, 'target', 'debug', 'headcount');
const SITE = '127.0.0.1';
const EMAIL = 'ops@example.com';
const PASSWORD = 'browser test password';

/** Run the headcount CLI against the test database; resolves to stdout. */
async function cli(args, stdin = '') {
  const dir = await mkdtemp(join(tmpdir(), 'hc-dash-'));
  const config = join(dir, 'headcount.toml');
  await writeFile(
    config,
    `[clickhouse]\nurl = "${process.env.CH_URL}"\ndatabase = "${process.env.CH_DATABASE}"\n` +
      `[privacy]\nsalt_key_file = "${join(dir, 'unused.key')}"\n[[sites]]\ndomain = "${SITE}"\n`,
  );
  // HEADCOUNT_<SECTION>__<KEY> would override the file: pass none.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.includes('__')));
  return new Promise((resolve, reject) => {
    const child = execFile(BINARY, ['--config', config, ...args], { env }, (err, stdout, stderr) =>
      err ? reject(new Error(`headcount ${args.join(' ')}: ${stderr}`)) : resolve(stdout),
    );
    child.stdin.end(stdin);
  });
}

let apiKey;

async function api(path) {
  const r = await fetch(`${HEADCOUNT}/api/v1/stats/${path}`, { headers: { authorization: `Bearer ${apiKey}` } });
  assert.equal(r.status, 200, `${path}: ${await r.clone().text()}`);
  return r.json();
}

const visitorsToday = async (filters = '') =>
  (await api(`aggregate?site_id=${SITE}&period=day${filters ? `&filters=${encodeURIComponent(filters)}` : ''}`)).results.visitors.value;

/** A page view by visitor `i` (a distinct User-Agent is a distinct visitor). */
async function pageview(i, path, referrer) {
  const r = await fetch(`${HEADCOUNT}/api/event`, {
    method: 'POST',
    headers: { 'user-agent': `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.${i}.0 Safari/537.36` },
    body: JSON.stringify({ n: 'pageview', d: SITE, u: `http://${SITE}${path}`, r: referrer }),
  });
  assert.equal(r.headers.get('x-headcount-event'), 'accepted');
}

// Known events: 12 visitors from Google read /dash/ and /dash/pricing; 3
// come directly to /dash/about. Other browser tests record to the same
// site, so expectations are "what was there before" plus these.
const expected = {};
before(async () => {
  await cli(['user', 'add', EMAIL, '--site', SITE], `${PASSWORD}\n`);
  apiKey = (await cli(['apikey', 'add', EMAIL])).trim();
  const [all, google] = [await visitorsToday(), await visitorsToday('visit:source==Google')];
  for (let i = 0; i < 12; i++) {
    await pageview(1000 + i, '/dash/', 'https://www.google.com/');
    await pageview(1000 + i, '/dash/pricing', `http://${SITE}/dash/`);
  }
  for (let i = 0; i < 3; i++) await pageview(2000 + i, '/dash/about', '');
  expected.all = all + 15;
  expected.google = google + 12;
  const deadline = Date.now() + 20000;
  while ((await visitorsToday()) !== expected.all) {
    if (Date.now() > deadline) throw new Error(`events did not arrive: ${await visitorsToday()} != ${expected.all}`);
    await new Promise((r) => setTimeout(r, 200));
  }
});

/** A page that fails the test on any console error (CSP violations included). */
async function watched(ctx) {
  const page = await ctx.newPage();
  const errors = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(String(e)));
  return { page, errors };
}

const metric = (page, id) => page.locator(`[data-metric="${id}"]`).innerText();

test('log in, filter by a click, change the range and the language', async () => {
  const ctx = await context(browser());
  const { page, errors } = await watched(ctx);
  await page.goto(`${HEADCOUNT}/${SITE}?period=day`);
  assert.match(page.url(), /\/login\?next=/, 'the dashboard asks for a login');
  await screenshot(page, 'dashboard-login');
  await page.fill('input[name=email]', EMAIL);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL(`${HEADCOUNT}/${SITE}?period=day`);
  assert.equal(await metric(page, 'visitors'), String(expected.all));
  assert.match(await page.locator('#m-visitors .mlabel').textContent(), /Unique visitors/);
  assert.ok(await page.locator('svg.chart path.cur').count(), 'the chart is drawn');
  const cookies = await ctx.cookies();
  const session = cookies.find((c) => c.name === 'hc_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));
  await screenshot(page, 'dashboard-today');

  // Click the Google row of the sources panel: the whole dashboard filters.
  await page.locator('#p-sources a.filter', { hasText: 'Google' }).click();
  await page.waitForURL(/f=source%3AGoogle/);
  assert.equal(await metric(page, 'visitors'), String(expected.google));
  assert.match(await page.locator('.chip').innerText(), /Source\s+Google/);
  const pages = await page.locator('#p-pages').innerText();
  assert.match(pages, /\/dash\/pricing/);
  assert.doesNotMatch(pages, /\/dash\/about/, 'direct visitors are filtered out');

  // Another range keeps the filter; several days are visitor-days.
  await page.click('nav.periods a:has-text("Last 7 days")');
  await page.waitForURL(/period=7d.*f=source%3AGoogle/);
  assert.match(await page.locator('#m-visitors .mlabel').textContent(), /Visitor-days/);
  assert.ok(Number(await metric(page, 'visitors')) >= expected.google);
  await page.click('#m-visitors summary');
  assert.match(await page.locator('#m-visitors details.help p').innerText(), /daily|every night/);
  await screenshot(page, 'dashboard-filtered-7d');

  // Russian, kept in the URL.
  await page.click('a.lang');
  await page.waitForURL(/lang=ru/);
  assert.match(await page.locator('#m-visitors .mlabel').textContent(), /Посетитель-дни/);
  assert.match(await page.locator('.chip').innerText(), /Источник\s+Google/);
  await page.click('nav.periods a:has-text("Сегодня")');
  await page.waitForURL(/period=day.*lang=ru|lang=ru.*period=day/);
  assert.equal(await metric(page, 'visitors'), String(expected.google));
  await screenshot(page, 'dashboard-ru');

  // Dark mode and a phone.
  const dark = await context(browser(), { colorScheme: 'dark', viewport: { width: 390, height: 844 } });
  await dark.addCookies(cookies);
  const phone = await dark.newPage();
  await phone.goto(`${HEADCOUNT}/${SITE}?period=day`);
  assert.equal(await metric(phone, 'visitors'), String(expected.all));
  await screenshot(phone, 'dashboard-dark-mobile');
  await phone.screenshot({ path: join(process.env.ARTIFACTS_DIR || 'test-artifacts/browser', 'dashboard-dark-mobile-full.png'), fullPage: true });
  await dark.close();

  assert.deepEqual(errors, [], 'no console errors');
  await ctx.close();
});

test('a shared link shows the dashboard without login, small groups folded', async () => {
  const ctx = await context(browser());
  const { page, errors } = await watched(ctx);
  await page.goto(`${HEADCOUNT}/login`);
  await page.fill('input[name=email]', EMAIL);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL(`${HEADCOUNT}/${SITE}`);
  await page.click('a:has-text("Shared links")');
  await page.fill('input[name=label]', 'for the board');
  await page.click('button:has-text("Create link")');
  const link = await page.inputValue('#new-link');
  assert.match(link, /\/share\/[0-9a-f]{64}$/);
  await screenshot(page, 'dashboard-shares');

  const anon = await context(browser());
  const { page: shared, errors: sharedErrors } = await watched(anon);
  await shared.goto(`${link}?period=day`);
  assert.match(await shared.locator('.badge').first().innerText(), /Shared read-only view/);
  assert.equal(await metric(shared, 'visitors'), String(expected.all));
  const sources = await shared.locator('#p-sources').innerText();
  assert.match(sources, /Google/, 'a source with at least k visitors is shown');
  assert.match(sources, /\(other\)/, 'small sources are folded');
  const pages = await shared.locator('#p-pages').innerText();
  assert.doesNotMatch(pages, /\/dash\/about/, 'a page of 3 visitors is not shown in a shared link');
  assert.deepEqual(await anon.cookies(), [], 'opening a shared link sets no cookie');
  await screenshot(shared, 'dashboard-shared');
  // Clicking a row works in the shared view too, and stays in it.
  await shared.locator('#p-sources a.filter', { hasText: 'Google' }).click();
  await shared.waitForURL(/\/share\/[0-9a-f]{64}\?.*f=source%3AGoogle/);
  assert.equal(await metric(shared, 'visitors'), String(expected.google));
  assert.deepEqual([...errors, ...sharedErrors], [], 'no console errors');
  await anon.close();
  await ctx.close();
});
