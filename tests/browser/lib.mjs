// Shared helpers of the browser tests: the browser, the test site's URLs,
// ClickHouse queries with a deadline, screenshots.
//
// scripts/test-browser.sh starts Headcount and the test site and sets:
//   HEADCOUNT_URL   e.g. http://127.0.0.1:41234
//   SITE_URL        e.g. http://127.0.0.1:41235 (its [[sites]] domain is 127.0.0.1)
//   CH_URL, CH_DATABASE   the ClickHouse database Headcount writes to
//   ARTIFACTS_DIR   where screenshots go (test-artifacts/browser)
import { mkdir } from 'node:fs/promises';
import { after, before } from 'node:test';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the browser tests with scripts/test-browser.sh`);
  return v;
};

export const HEADCOUNT = need('HEADCOUNT_URL');
export const SITE = need('SITE_URL');
const CH = need('CH_URL');
const DB = need('CH_DATABASE');
const ARTIFACTS = process.env.ARTIFACTS_DIR || 'test-artifacts/browser';

// A desktop Chrome User-Agent: headless Chromium says "HeadlessChrome",
// which Headcount rightly drops as a bot.
export const USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

/** Debian's Chromium, headless, with a fresh temporary profile. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      // Also for requests the browser sends after a page is gone (beacons
      // from a page being left), which the context's userAgent misses.
      `--user-agent=${USER_AGENT}`,
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** One browser for the tests of a file: launched before, closed after. */
export function sharedBrowser() {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });
  return () => browser;
}

/** A fresh browser context (own cookies and storage). */
export function context(browser, options = {}) {
  return browser.newContext({ userAgent: USER_AGENT, viewport: { width: 1280, height: 720 }, ...options });
}

/** URL of test page `path` of test `name`, with snippet flags (see site.mjs). */
export function pageUrl(name, path = '/', flags = {}) {
  const q = new URLSearchParams(flags).toString();
  return `${SITE}/t/${name}${path}${q ? `?${q}` : ''}`;
}

/**
 * Every request a page makes to Headcount's event endpoints, with the
 * response's X-Headcount-Event header once it arrives.
 */
export function recordBeacons(page) {
  const beacons = [];
  page.on('request', (req) => {
    if (/\/api\/event|\/p\.gif/.test(req.url())) beacons.push({ url: req.url(), body: req.postData(), request: req });
  });
  return beacons;
}

/** Rows of `sql` (a SELECT without FORMAT) from the test database. */
export async function query(sql) {
  const r = await fetch(`${CH}/?database=${DB}`, { method: 'POST', body: `${sql} FORMAT JSONEachRow` });
  const text = await r.text();
  if (!r.ok) throw new Error(`ClickHouse: ${text}\n${sql}`);
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** Events of one test (pathname under /t/<name>), as objects with props. */
export async function events(name, where = '1') {
  const rows = await query(
    `SELECT name, pathname, interactive, screen_width, prop_keys, prop_values, referrer_host, revenue_micros, revenue_currency FROM events
     WHERE site = '127.0.0.1' AND pathname LIKE '/t/${name}/%' AND (${where}) ORDER BY ts, name`,
  );
  return rows.map((r) => ({ ...r, props: Object.fromEntries(r.prop_keys.map((k, i) => [k, r.prop_values[i]])) }));
}

/**
 * Poll until `check(rows)` is true for the events of test `name`
 * (Headcount flushes every 100 ms in these tests); fail with the last rows
 * after `timeout` ms.
 */
export async function waitForEvents(name, check, { timeout = 15000, where } = {}) {
  const deadline = Date.now() + timeout;
  let rows = [];
  while (Date.now() < deadline) {
    rows = await events(name, where);
    if (check(rows)) return rows;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for events of ${name}; have:\n${JSON.stringify(rows, null, 2)}`);
}

/** Save a screenshot under test-artifacts/browser/. */
export async function screenshot(page, file) {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${file}.png`), fullPage: false });
}

/** The first event called `name` (on page `pathname`, if given). */
export const find = (rows, name, pathname) => rows.find((r) => r.name === name && (!pathname || r.pathname === pathname));

/** Names of the events, for readable assertions. */
export const names = (rows) => rows.map((r) => `${r.name} ${r.pathname}`);
