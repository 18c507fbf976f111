// The console's Insight page in Debian's Chromium against a real `evident serve` filled by
// `evident demo` (its planted story: chat loses contacts at verification): a reader signs in, the
// trend chart and the funnel show exactly what the API answers for the same query, suppressed
// cells read "hidden", journeys, cohorts and the service measure render, a bad step is a
// clear error. axe-core on each view; screenshots insight-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as H from './harness.js';

const RANGE = { from: '2026-11-19', to: '2026-12-03' };
let server;
let ctx;
let page;
let problems;
let reader;
const shots = [];

async function open(query, selector) {
  await page.goto(`${server.base}/#/insight?${new URLSearchParams({ ...RANGE, ...query })}`);
  await page.waitForSelector(selector, { timeout: 20_000 });
}

async function check(name) {
  await page.waitForLoadState('networkidle');
  shots.push(await H.shot(page, name));
  assert.deepEqual(await H.axe(page), [], `axe-core: serious violations on ${name}`);
}

/** The API's answer to the same query, as the reader. */
async function answer(view, query) {
  const q = new URLSearchParams({ ...query, from: `${RANGE.from}T00:00:00Z`, to: `${RANGE.to}T00:00:00Z` });
  const { status, body } = await H.api(server, reader, 'GET', `/v1/insights/${view}?${q}`);
  assert.equal(status, 200, JSON.stringify(body));
  return body;
}

const rows = (selector) => page.$$eval(`${selector} tbody tr`, (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
const n = (v) => (v === undefined || v === null ? 'hidden' : String(v));

before(async () => {
  server = await H.serve();
  H.cli(server, server.admin, 'demo', '--customers', '240', '--days', '14', '--until', RANGE.to);
  reader = (await H.api(server, server.admin, 'POST', '/v1/keys', { role: 'reader', label: 'analyst' })).body.key;
  ctx = await H.browser();
  page = ctx.pages()[0] || await ctx.newPage();
  problems = H.watch(page);
  await page.goto(server.base);
  await page.fill('#key', reader);
  await page.click('form.signin button[type=submit]');
  await page.waitForSelector('#result-count');
});

after(async () => {
  await ctx?.close();
  server?.stop();
  console.log(`screenshots:\n${shots.join('\n')}`);
});

test('the reader sees Insight in the navigation and the trend equals the API', async () => {
  assert.ok(await page.$('nav a[href="#/insight"]'), 'an Insight entry in the navigation');
  // The chart may have few points to draw: a reader's small cells (and those that would give them
  // away) are suppressed; the table below it holds every cell.
  await open({ view: 'trend', by: 'outcome', bucket: 'day' }, '#trend-chart table');
  const api = await answer('trend', { by: 'outcome', bucket: 'day' });
  assert.ok(api.series.length >= 2, 'success and failure series');
  assert.deepEqual(await rows('#trend-previous table'), api.series.map((x) => [x.key, n(x.total.events), n(x.previous.events),
    n(x.total.customers), `${(x.total.failure_rate * 100).toFixed(1)}%`]));
  const days = [...new Set(api.series.flatMap((x) => x.points.map((p) => p.start)))].sort();
  assert.equal(days.length, 14);
  assert.deepEqual(await rows('#trend-chart table'), days.map((d) => [d.slice(0, 16).replace('T', ' '),
    ...api.series.map((x) => { const p = x.points.find((q) => q.start === d); return p ? n(p.events) : '0'; })]));
  assert.equal(await page.$$eval('#trend-chart svg', (svgs) => svgs[0].getAttribute('aria-hidden')), 'true');
  await check('insight-trend');
});

test('suppressed cells read "hidden", as the API suppresses them', async () => {
  await open({ view: 'trend', by: 'actor', bucket: 'day' }, '#trend-previous table');
  const api = await answer('trend', { by: 'actor', bucket: 'day' });
  const suppressed = api.series.filter((x) => x.total.suppressed).length;
  assert.ok(suppressed > 0, 'some actors served fewer than 5 customers');
  const shown = await rows('#trend-previous table');
  assert.equal(shown.filter((r) => r[1] === 'hidden').length, suppressed);
  assert.ok(!shown.some((r) => r[1] === '0'), 'never a zero for a suppressed cell');
});

test('the funnel shows the planted drop-off at verification on chat, equal to the API', async () => {
  const steps = 'type:contact.opened;type:contact.verified outcome:success;type:contact.resolved';
  await open({ view: 'funnel', steps, by: 'channel', within: '7d' }, '#funnel-chart table');
  const api = await answer('funnel', { steps, by: 'channel', within: '7d' });
  assert.deepEqual(await rows('#funnel-chart table'), api.steps.map((st) => [String(st.step), st.query, n(st.customers),
    `${(st.conversion * 100).toFixed(1)}%`, st.step > 1 ? n(st.dropped) : '-']));
  const byChannel = Object.fromEntries((await rows('#funnel-breakdown')).map(([channel, ...cells]) => [channel, cells]));
  for (const g of api.breakdown) assert.deepEqual(byChannel[g.key].slice(0, 3), g.steps.map((st) => n(st.customers)));
  const lost = (c) => 1 - Number(byChannel[c][1]) / Number(byChannel[c][0]);
  // Channels whose small drop-offs are suppressed (with the cells that would give them away) are left out.
  assert.ok(!Number.isNaN(lost('chat')), 'the chat drop-off is shown');
  for (const other of ['email', 'phone', 'web'].filter((c) => !Number.isNaN(lost(c)))) assert.ok(lost('chat') > lost(other) + 0.05, `chat loses more at verification than ${other}`);
  assert.match(await page.textContent('#time-to-convert'), /^Time to convert: median \S+, p90 \S+ \(\d+ customers\)$/);
  await check('insight-funnel');
});

test('journeys, cohorts and the service measure render their answers', async () => {
  await open({ view: 'journeys' }, '#journey-paths li');
  const journeys = await answer('journeys', { only: 'type:contact.*', resolved: 'type:contact.resolved', top: '10' });
  assert.equal(await page.$$eval('#journey-paths li', (lis) => lis.length), journeys.paths.length);
  assert.equal(await page.textContent('#journey-paths li'), `${journeys.paths[0].sessions} sessions, ${journeys.paths[0].customers} customers: ${journeys.paths[0].path.join(' → ')}`);
  assert.match(await page.textContent('#repeats'), new RegExp(`: ${journeys.repeats.repeat_customers} of ${journeys.repeats.resolved_customers} resolved`));
  await check('insight-journeys');
  await open({ view: 'cohorts' }, '#cohort-table tbody tr');
  const cohorts = await answer('cohorts', {});
  assert.deepEqual((await rows('#cohort-table')).map((r) => r[1]), cohorts.cohorts.map((c) => n(c.customers)));
  await check('insight-cohorts');
  await open({ view: 'measure' }, '#measure-chart table');
  const measure = await answer('measure', { first: 'type:contact.opened', last: 'type:contact.resolved', by: 'channel' });
  assert.deepEqual((await rows('#measure-chart table')).map((r) => r.slice(0, 3)), measure.rows.map((r) => [r.key, n(r.count), n(r.customers)]));
  await check('insight-measure');
});

test('dark mode keeps the contrast of the heat table and the charts', async () => {
  await page.emulateMedia({ colorScheme: 'dark' });
  try {
    await open({ view: 'cohorts' }, '#cohort-table td.heat');
    await check('insight-dark-cohorts');
    await open({ view: 'funnel', by: 'channel' }, '#funnel-chart table');
    await check('insight-dark-funnel');
  } finally { await page.emulateMedia({ colorScheme: 'light' }); }
});

test('a bad step is a clear error naming the parameter, and the form keeps the steps', async () => {
  await open({ view: 'funnel', steps: 'color:red;type:contact.opened' }, '.status.error');
  assert.match(await page.textContent('.status.error'), /^Cannot answer: steps: "color" is not one of/);
  assert.equal(await page.getAttribute('#i-steps', 'aria-invalid'), 'true');
  assert.equal(await page.inputValue('#i-steps'), 'color:red\ntype:contact.opened');
  await page.fill('#i-steps', 'type:contact.opened\ntype:contact.resolved');
  await page.click('form.insight-form button[type=submit]');
  await page.waitForSelector('#funnel-chart table');
  assert.match(await page.evaluate(() => location.hash), /steps=type%3Acontact\.opened%3Btype%3Acontact\.resolved/);
  assert.deepEqual(problems, []);
});
