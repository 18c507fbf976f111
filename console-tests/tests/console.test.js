// The console end to end, in Debian's Chromium against a real `evident serve` filled by
// `evident demo`: sign in, search with qualifiers, a customer, an event verified in the page, the
// same page failing after one stored entry is changed in SQLite, a finding worked, a key created
// and revoked, a sign-in link, personal values after a purpose, sign out. axe-core on every main
// page; screenshots of each in target/console-screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as H from './harness.js';

let server;
let ctx;
let page;
let problems;
const shots = [];

async function open(hash, selector) {
  await page.goto(`${server.base}/${hash}`);
  await page.waitForSelector(selector, { timeout: 20_000 });
}

async function check(name) {
  await page.waitForLoadState('networkidle');
  shots.push(await H.shot(page, name));
  assert.deepEqual(await H.axe(page), [], `axe-core: serious violations on ${name}`);
}

before(async () => {
  server = await H.serve();
  H.cli(server, server.admin, 'demo', '--customers', '60', '--days', '5', '--until', '2026-11-20');
  ctx = await H.browser();
  page = ctx.pages()[0] || await ctx.newPage();
  problems = H.watch(page);
});

after(async () => {
  await ctx?.close();
  server?.stop();
  console.log(`screenshots:\n${shots.join('\n')}`);
});

test('a wrong key is refused and the admin key signs in', async () => {
  await open('', '#key');
  await check('signin');
  await page.fill('#key', 'evk_0123456789abcdef_wrong');
  await page.click('form.signin button[type=submit]');
  await page.waitForSelector('.status.error');
  assert.match(await page.textContent('.status.error'), /Not signed in/);
  await page.fill('#key', server.admin);
  await page.click('form.signin button[type=submit]');
  await page.waitForSelector('#result-count');
  assert.match(await page.textContent('#who'), /admin · default/);
  const cookies = await ctx.cookies(server.base);
  const session = cookies.find((c) => c.name === 'evident_session');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
});

test('search with qualifiers: the query is in the URL and every row matches', async () => {
  await page.fill('#q', 'actor:agt_nshah action:read type:customer.*');
  await page.press('#q', 'Enter');
  await page.waitForFunction(() => location.hash.includes('actor%3Aagt_nshah'));
  // The new page's own count (the previous page's is there until it is replaced).
  await page.waitForFunction(() => document.querySelectorAll('ul.chips[aria-label=Filters] a').length === 3
    && document.querySelector('#result-count')?.textContent);
  const rows = await page.$$eval('table.events tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  assert.ok(rows.length > 0, 'some results');
  for (const [, type, action, actor] of rows) {
    assert.ok(type.startsWith('customer.'), type);
    assert.equal(action, 'read');
    assert.equal(actor, 'agt_nshah');
  }
  const chips = await page.$$eval('ul.chips[aria-label=Filters] a', (as) => as.map((a) => a.textContent));
  assert.deepEqual(chips, ['actor:agt_nshah ×', 'action:read ×', 'type:customer.* ×']);
  await check('search');
  await open('#/search?q=outcome%3Abogus', '.status.error');
  assert.match(await page.textContent('.status.error'), /outcome: "bogus" is not one of/);
});

test('a type prefix is filtered by the server: the rows are exactly its answer', async () => {
  const asked = [];
  const onRequest = (request) => {
    const url = new URL(request.url());
    if (url.pathname === '/v1/events') asked.push(url.searchParams.get('type'));
  };
  page.on('request', onRequest);
  await open('#/search?q=type%3Aevident.console.*', '#result-count');
  page.off('request', onRequest);
  assert.deepEqual(asked, ['evident.console.*'], 'the prefix goes to the server, one request');
  const shown = await page.$$eval('table.events tbody tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent));
  const { status, body } = await H.api(server, server.admin, 'GET', '/v1/events?type=evident.console.*&limit=50');
  assert.equal(status, 200, JSON.stringify(body));
  assert.ok(body.events.length > 0, 'the sign-in was recorded');
  assert.ok(body.events.every((item) => item.event.type.startsWith('evident.console.')));
  assert.deepEqual(shown, body.events.map((item) => item.event.type));
  await open('#/search?q=type%3Acustomer.*.read', '.status.error');
  assert.match(await page.textContent('.status.error'), /type: only a trailing \* is allowed/);
  const refused = await H.api(server, server.admin, 'GET', '/v1/events?type=customer.*.read');
  assert.equal(refused.status, 400);
  assert.match(JSON.stringify(refused.body), /"type"/);
});

test('a customer page draws the timeline and lists who did what and why', async () => {
  await open('#/search?q=type%3Acustomer.record.updated', 'table.events tbody tr');
  await page.click('table.events tbody tr td:nth-child(5) a');
  await page.waitForSelector('svg.timeline circle');
  assert.match(await page.textContent('h1'), /^Customer cus_\d+$/);
  assert.ok((await page.$$('svg.timeline circle')).length > 0);
  await check('customer');
});

test('an event is verified in the page, and fails once its stored entry is changed', async () => {
  await open('#/search?q=type%3Acustomer.record.viewed', 'table.events tbody tr');
  const href = await page.getAttribute('table.events tbody tr td:nth-child(2) a', 'href');
  await page.click('table.events tbody tr td:nth-child(2) a');
  await page.waitForSelector('.verdict.verified', { timeout: 20_000 });
  assert.equal(await page.textContent('#verdict'), 'Verified in this page');
  await check('event-verified');
  const id = decodeURIComponent(href.split('/').pop()).replaceAll('-', '');
  const changed = execFileSync('python3', ['-c', `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
n = db.execute("UPDATE events SET entry = CAST(replace(CAST(entry AS TEXT), '\\"outcome\\":\\"success\\"', '\\"outcome\\":\\"failure\\"') AS BLOB) WHERE event_id = ?", (bytes.fromhex(sys.argv[2]),)).rowcount
db.commit()
print(n)`, join(server.dataDir, 'evident.sqlite'), id], { encoding: 'utf8' }).trim();
  assert.equal(changed, '1', 'one stored entry changed');
  await page.reload();
  await page.waitForSelector('.verdict.failed', { timeout: 20_000 });
  const verdict = await page.textContent('#verdict');
  assert.match(verdict, /^Not verified\. Failed: .*inclusion proof/);
  assert.match(await page.textContent('.steps'), /Failed: the inclusion proof leads from the entry/);
  await check('event-tampered');
});

test('a finding is acknowledged with a comment', async () => {
  await open('#/findings', 'table tbody tr a');
  await check('findings');
  await page.click('table tbody tr a');
  await page.waitForSelector('#finding-status');
  assert.equal(await page.textContent('#finding-status'), 'open');
  await page.fill('textarea[name=comment]', 'looking into it (console test)');
  await page.click('button:has-text("Acknowledge")');
  await page.waitForFunction(() => document.getElementById('finding-status').textContent === 'acknowledged');
  await check('finding');
});

test('a key is created (shown once) and revoked', async () => {
  await open('#/keys', 'table');
  await page.selectOption('#role', 'reader');
  await page.fill('input[name=label]', 'console test');
  await page.click('form button[type=submit]');
  await page.waitForSelector('#new-key');
  const key = await page.textContent('#new-key');
  assert.match(key, /^evk_[0-9a-f]{16}_/);
  assert.equal((await H.api(server, key, 'GET', '/v1/events?limit=1')).status, 200);
  await check('keys');
  const keyId = key.split('_')[1];
  page.once('dialog', (dialog) => dialog.accept());
  await page.click(`button:has-text("Revoke ${keyId}")`);
  await page.waitForFunction((id) => ![...document.querySelectorAll('button')].some((b) => b.textContent === `Revoke ${id}`), keyId);
  assert.equal((await H.api(server, key, 'GET', '/v1/events?limit=1')).status, 401);
});

test('log health shows exactly what the health API answers, and the consistency watch passes', async () => {
  const answered = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/logs/default/health');
  await page.goto(`${server.base}/#/health`);
  const body = await (await answered).json();
  await page.waitForSelector('#watch li', { timeout: 20_000 });
  await page.waitForFunction(() => [...document.querySelectorAll('#watch li')].some((li) => /consistency|first checkpoint/.test(li.textContent)));
  const fact = (name) => page.textContent(`dd[data-fact="${name}"]`);
  assert.equal(await fact('Tree size'), String(body.tree_size));
  assert.equal(await fact('Entries sequenced, last minute'), String(body.last_minute));
  assert.equal(await fact('Entries sequenced, last hour'), String(body.last_hour));
  assert.equal(await fact('Ingestion rate (last minute)'), `${(body.last_minute / 60).toFixed(2)} per second`);
  assert.match(await fact('Checkpoint age'), new RegExp(`^${body.checkpoint_age_secs.toFixed(1)} s`));
  const sizes = await page.$$eval('table:has(caption:text("Tree size over time")) tbody tr', (trs) => trs.map((tr) => tr.cells[1].textContent));
  assert.deepEqual(sizes, body.sizes.map((x) => String(x.tree_size)));
  assert.equal(sizes.length, Math.min(48, body.tree_size));
  assert.equal(sizes.at(-1), String(body.tree_size));
  const ingestion = await page.$$eval('table:has(caption:text("Ingestion on this node")) tbody td', (tds) => tds.map((td) => Number(td.textContent)));
  // The demo's events came in through this node: every one stored, none refused.
  const api = (await H.api(server, server.admin, 'GET', '/v1/logs/default/health')).body;
  assert.deepEqual(ingestion, [api.node.received, api.node.stored, api.node.duplicate, api.node.rejected, api.node.conflict]);
  assert.ok(api.node.received > 100 && api.node.stored === api.node.received, JSON.stringify(api.node));
  const watch = await page.$$eval('#watch li', (lis) => lis.map((li) => li.className));
  assert.ok(watch.length >= 2 && watch.every((c) => c === 'ok'), `consistency watch: ${watch}`);
  await check('health');
  // A tenant the key may not read: the server refuses, the page says so.
  await open('#/health?tenant=elsewhere', '.status.error');
  assert.match(await page.textContent('.status.error'), /Log health failed/);
});

test('the other main pages pass axe-core', async () => {
  for (const [name, hash, selector] of [['privacy', '#/privacy', 'table'],
    ['tenants', '#/tenants', 'table'], ['rules', '#/rules', 'table'], ['record', '#/record/customer/cus_00016', '#version']]) {
    await open(hash, selector);
    await check(name);
  }
});

test('a webhook to a private address is refused in the page (this server allows none)', async () => {
  await open('#/rules', 'form:has(h2:text("Add a webhook"))');
  await page.fill('[name=hook-url]', 'http://127.0.0.1:9/hook');
  await page.click('button:text("Add webhook")');
  await page.waitForSelector('form .status.error');
  assert.match(await page.textContent('form .status.error'), /^Not added: .*EVIDENT_ALLOW_PRIVATE_DESTINATIONS/);
  assert.deepEqual((await H.api(server, server.admin, 'GET', '/v1/webhooks')).body.webhooks, []);
});

test('an admin backtests a rule and sees the chart', async () => {
  await open('#/rules', 'table');
  await page.click('button:has-text("Backtest off-hours")');
  await page.waitForSelector('figcaption:has-text("Backtest of off-hours")', { timeout: 60_000 });
  const caption = await page.textContent('figcaption:has-text("Backtest of off-hours")');
  const found = Number(/: (\d+) findings/.exec(caption)[1]);
  assert.ok(found > 0, caption);
  assert.ok((await page.$$('svg.bars rect')).length > 0);
  await check('rules-backtest');
  await page.click('button:has-text("Disable off-hours")');
  await page.waitForSelector('button:has-text("Enable off-hours")');
  const rule = await H.api(server, server.admin, 'GET', '/v1/rules/off-hours');
  assert.equal(rule.body.enabled, false);
  await page.click('button:has-text("Enable off-hours")');
  await page.waitForSelector('button:has-text("Disable off-hours")');
});

test('dark mode keeps its contrast', async () => {
  await page.emulateMedia({ colorScheme: 'dark' });
  await open('#/search?q=action%3Aupdate', 'table.events tbody tr');
  await check('dark-search');
  await open('#/findings', 'table tbody tr a');
  await check('dark-findings');
  await page.emulateMedia({ colorScheme: 'light' });
});

test('the phone-sized viewport shows search and an event', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await open('#/search?q=action%3Aupdate', 'table.events tbody tr');
  await check('phone-search');
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('sign out ends the session', async () => {
  await page.click('#sign-out');
  await page.waitForSelector('text=You are signed out.');
  const status = await page.evaluate(async () => (await fetch('/console/session')).status);
  assert.equal(status, 401);
  await open('#/search', '#key');
});

test('an investigator signs in with a one-time link and reveals personal values after a purpose', async () => {
  const made = await H.api(server, server.admin, 'POST', '/v1/keys', { role: 'investigator', label: 'console investigator' });
  const url = H.cli(server, made.body.key, 'console-link').trim();
  assert.match(url, /\/#\/link\/[A-Za-z0-9_-]{43}$/);
  await page.goto(url);
  await page.waitForSelector('#result-count');
  assert.match(await page.textContent('#who'), /investigator/);
  await open('#/customer/cus_00016', 'form.purpose');
  await page.fill('input[name=purpose]', 'case 77: customer access request');
  await page.click('form.purpose button');
  await page.waitForSelector('text=Personal values shown for: case 77: customer access request');
  await check('customer-purpose');
  const shownChanges = await page.$$eval('ul.changes li', (lis) => lis.map((li) => li.textContent));
  assert.ok(shownChanges.some((text) => / → /.test(text) && !/withheld/.test(text)), `values shown: ${shownChanges.slice(0, 5)}`);
  // The read with personal values is recorded with its purpose, under the investigator's key.
  const keyId = made.body.key_id;
  const reads = await H.api(server, server.admin, 'GET', `/v1/events?type=evident.audit.read&actor=key:${keyId}&limit=100`);
  const purposeful = reads.body.events.map((item) => item.event).filter((e) => e.reason === 'case 77: customer access request');
  assert.equal(purposeful.length, 1, JSON.stringify(reads.body));
  assert.deepEqual(purposeful[0].targets, [{ type: 'subject_timeline', id: 'cus_00016' }]);
  assert.deepEqual(purposeful[0].data_classes, ['pii']);
  const again = await page.evaluate(async (link) => (await fetch('/console/session', { method: 'POST',
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ link }) })).status, url.split('/').pop());
  assert.equal(again, 401, 'a link works once');
  assert.deepEqual(problems, [], 'no CSP violation or page error');
});
