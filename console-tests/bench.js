// Measures the console in Debian's Chromium against a running server (bench/console.sh starts
// it): first useful paint (navigation start to search results painted, cold cache and warm), the
// time from a search being asked to its results painted, and the bytes the console loads.
// Usage: node bench.js BASE_URL ADMIN_KEY [REPEATS]; prints one JSON object.
import * as H from './tests/harness.js';

const [base, key, repeats = '5'] = process.argv.slice(2);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function searchMs(page, query) {
  await page.evaluate((q) => {
    performance.clearMarks('evident:results');
    globalThis.asked = performance.now();
    location.hash = `#/search?q=${encodeURIComponent(q)}&n=${Math.random()}`;
  }, query);
  await page.waitForFunction(() => performance.getEntriesByName('evident:results').length > 0, null, { timeout: 120_000 });
  return page.evaluate(() => ({
    ms: performance.getEntriesByName('evident:results')[0].startTime - globalThis.asked,
    rows: document.querySelectorAll('table.events tbody tr').length,
  }));
}

async function firstUsefulPaint(page, query) {
  await page.goto('about:blank');
  await page.goto(`${base}/#/search?q=${encodeURIComponent(query)}`);
  await page.waitForFunction(() => performance.getEntriesByName('evident:results').length > 0, null, { timeout: 120_000 });
  return page.evaluate(() => ({
    results_ms: performance.getEntriesByName('evident:results')[0].startTime,
    first_contentful_paint_ms: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null,
    asset_bytes: performance.getEntriesByType('resource').filter((r) => r.name.includes('/console/assets/'))
      .reduce((n, r) => n + r.encodedBodySize, 0),
    document_bytes: performance.getEntriesByType('navigation')[0].encodedBodySize,
  }));
}

const ctx = await H.browser();
const page = ctx.pages()[0] || await ctx.newPage();
await page.goto(`${base}/`);
await page.fill('#key', key);
await page.click('form.signin button[type=submit]');
await page.waitForSelector('#result-count', { timeout: 120_000 });
const sample = await page.evaluate(async () => (await (await fetch('/v1/events?limit=1&order=oldest')).json()).events[0].event);
const queries = {
  newest: '',
  actor: `actor:${sample.actor.id}`,
  type: `type:${sample.type}`,
  type_prefix: `type:${sample.type.split('.')[0]}.*`,
  // Rare in a filled log: the console's own sign-ins (one or two events among all the others).
  type_prefix_rare: 'type:evident.console.*',
  actor_action_outcome: `actor:${sample.actor.id} action:${sample.action} outcome:${sample.outcome}`,
};
const cold = await (async () => {
  const fresh = await H.browser();
  const p = fresh.pages()[0] || await fresh.newPage();
  await p.goto(`${base}/`);
  await p.fill('#key', key);
  await p.click('form.signin button[type=submit]');
  await p.waitForSelector('#result-count', { timeout: 120_000 });
  await fresh.clearCookies();
  const cookies = await ctx.cookies();
  await fresh.addCookies(cookies);
  const p2 = await fresh.newPage();
  await p2.route('**/*', (route) => route.continue());
  const result = await firstUsefulPaint(p2, queries.actor);
  await fresh.close();
  return result;
})();
const warm = [];
for (let i = 0; i < Number(repeats); i += 1) warm.push((await firstUsefulPaint(page, queries.actor)).results_ms);
const search = {};
for (const [name, query] of Object.entries(queries)) {
  const runs = [];
  for (let i = 0; i < Number(repeats); i += 1) runs.push(await searchMs(page, query));
  const times = runs.map((r) => r.ms);
  search[name] = { query, rows: runs.at(-1).rows, median_ms: Math.round(median(times)), max_ms: Math.round(Math.max(...times)) };
}
const size = await page.evaluate(async (tenant) => Number((await (await fetch(`/v1/logs/${tenant}/checkpoint`)).text()).split('\n')[1]), 'default');
console.log(JSON.stringify({ events_in_log: size, first_useful_paint: { cold, warm_median_ms: Math.round(median(warm)) }, search }, null, 1));
await ctx.close();
