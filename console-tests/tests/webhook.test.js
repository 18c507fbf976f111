// A webhook made in the browser, end to end: an admin adds it on the rules page, pointing at a
// receiver this test runs on loopback (the server allows private destinations for that), a
// producer's unexplained read opens a finding, and the signed delivery arrives: its
// Evident-Signature checks out with the secret the page showed once. A URL the server refuses is
// shown as refused in the page. Screenshot webhook.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import * as H from './harness.js';

let server;
let ctx;
let page;
let problems;
let receiver;
const deliveries = [];
const shots = [];

/** A webhook receiver on loopback that keeps every request it gets. */
function receive() {
  return new Promise((resolve) => {
    const http = createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        deliveries.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-length': 0 }).end();
      });
    });
    http.listen(0, '127.0.0.1', () => resolve(http));
  });
}

/** `Evident-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. */
function verifies(secret, header, body) {
  const parts = Object.fromEntries(header.split(',').map((p) => p.trim().split('=')));
  const expected = createHmac('sha256', secret).update(`${parts.t}.`).update(body).digest();
  const given = Buffer.from(parts.v1 || '', 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected)
    && Math.abs(Date.now() / 1000 - Number(parts.t)) < 300;
}

async function until(what, probe, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = probe();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  receiver = await receive();
  server = await H.serve({ EVIDENT_ALLOW_PRIVATE_DESTINATIONS: 'true', EVIDENT_WEBHOOK_BACKOFF_MS: '100' });
  ctx = await H.browser();
  page = ctx.pages()[0] || await ctx.newPage();
  problems = H.watch(page);
  await page.goto(server.base);
  await page.fill('#key', server.admin);
  await page.click('form.signin button[type=submit]');
  await page.waitForSelector('#result-count');
});

after(async () => {
  await ctx?.close();
  server?.stop();
  receiver?.close();
  console.log(`screenshots:\n${shots.join('\n')}`);
});

test('a URL the server refuses is shown as refused, and nothing is added', async () => {
  await page.goto(`${server.base}/#/rules`);
  await page.waitForSelector('form:has(h2:text("Add a webhook"))');
  await page.fill('[name=hook-url]', 'ftp://127.0.0.1/hook');
  await page.click('button:text("Add webhook")');
  await page.waitForSelector('form .status.error');
  assert.match(await page.textContent('form .status.error'), /^Not added: .*http:\/\/ or https:\/\//);
  const listed = await H.api(server, server.admin, 'GET', '/v1/webhooks');
  assert.deepEqual(listed.body.webhooks, []);
});

test('a webhook added in the page receives the signed delivery of a finding', async () => {
  const url = `http://127.0.0.1:${receiver.address().port}/hook`;
  await page.fill('[name=hook-url]', url);
  await page.selectOption('#f-hook-severity', 'low');
  await page.fill('[name=hook-description]', 'browser test receiver');
  await page.click('button:text("Add webhook")');
  await page.waitForSelector('#hook-secret');
  const secret = await page.textContent('#hook-secret');
  assert.match(secret, /^whsec_/);
  await page.waitForSelector(`table:has(caption:text("Webhooks")) td:text("${url}")`);
  const listed = await H.api(server, server.admin, 'GET', '/v1/webhooks');
  assert.equal(listed.body.webhooks.length, 1);
  assert.equal(listed.body.webhooks[0].url, url);
  assert.ok(!JSON.stringify(listed.body).includes(secret), 'the secret is shown once, never listed');
  await H.shot(page, 'webhook').then((path) => shots.push(path));
  assert.deepEqual(await H.axe(page), [], 'axe-core: serious violations on the rules page');

  // An unexplained read of a customer's record opens a no-purpose finding.
  const producer = (await H.api(server, server.admin, 'POST', '/v1/keys', { role: 'producer' })).body.key;
  const read = {
    id: 'w-1', source: '//crm.test', type: 'customer.record.viewed', action: 'read', time: new Date().toISOString(),
    actor: { id: 'agent-9', type: 'user' }, subject: 'cus-9', targets: [{ type: 'customer', id: 'cus-9' }],
    outcome: 'success', origin: { ip: '198.51.100.9', service: 'crm' }, data_classes: ['pii'],
  };
  assert.equal((await H.api(server, producer, 'POST', '/v1/events', read)).status, 200);
  const delivery = await until('the no-purpose delivery', () => deliveries.find((d) => {
    try { return JSON.parse(d.body).finding?.rule === 'no-purpose'; } catch { return false; }
  }));
  assert.equal(delivery.path, '/hook');
  assert.match(delivery.headers['evident-delivery'], /^dlv_/);
  assert.ok(verifies(secret, delivery.headers['evident-signature'], delivery.body), 'the signature checks out with the shown secret');
  assert.ok(!verifies('whsec_wrong', delivery.headers['evident-signature'], delivery.body));
  assert.ok(!delivery.body.toString().includes('198.51.100.9'), 'no personal value in a delivery');
  const finding = JSON.parse(delivery.body).finding;
  // The same finding is in the console.
  await page.goto(`${server.base}/#/finding/${encodeURIComponent(finding.id)}`);
  await page.waitForSelector('h1');
  assert.match(await page.textContent('main'), /no-purpose/);
  assert.deepEqual(problems, []);
});
