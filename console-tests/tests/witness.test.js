// The console's witness policy, in Debian's Chromium: a real `evident witness` cosigns the
// checkpoints of a real `evident serve`; a policy of 1 of 1 (that witness) set in the event page
// passes, 2 of 2 with a second witness that never runs fails naming it, bad policy input is
// refused naming the field, and with no policy the step says so without failing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as H from './harness.js';

let server;
let eventId;
let w1;
let w2Vkey;
let logVkey;
let ctx;
let page;
let problems;

/** Starts `evident witness` on a fresh data directory; answers {vkey, base, dir, stop}. */
async function witness(name) {
  const dir = mkdtempSync(join(tmpdir(), `evident-witness-${name}-`));
  const child = spawn(H.EVIDENT, ['witness', '--name', name, '--listen', '127.0.0.1:0', '--data-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const deadline = Date.now() + 60_000;
  while (!(/witness vkey: (\S+)/.test(out) && /listening on (\S+)/.test(err))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`evident witness did not start:\n${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { vkey: /witness vkey: (\S+)/.exec(out)[1], base: /listening on (\S+)/.exec(err)[1], dir, stop: () => child.kill('SIGTERM') };
}

async function text(path) {
  const response = await fetch(server.base + path, { headers: { Authorization: `Bearer ${server.admin}` } });
  assert.equal(response.status, 200, path);
  return response.text();
}

before(async () => {
  w1 = await witness('w1.test');
  const w2Dir = mkdtempSync(join(tmpdir(), 'evident-witness-w2-'));
  w2Vkey = execFileSync(H.EVIDENT, ['witness', 'vkey', '--name', 'w2.test', '--data-dir', w2Dir], { encoding: 'utf8' }).trim();
  server = await H.serve({ EVIDENT_WITNESSES: `${w1.vkey} ${w1.base}`, EVIDENT_WITNESS_INTERVAL_MS: '100' });
  logVkey = (await text('/v1/logs/default/vkeys')).split('\n')[0];
  execFileSync(H.EVIDENT, ['witness', 'add-log', '--data-dir', w1.dir, logVkey]);
  const event = {
    id: 'cw-1', source: '//crm.example.com', type: 'customer.record.viewed', action: 'read', time: '2026-03-01T10:00:00Z',
    actor: { id: 'agent-1', type: 'user' }, subject: 'cust-1', outcome: 'success', targets: [{ type: 'customer', id: 'cust-1' }], origin: { service: 'crm' },
  };
  const producer = await H.api(server, server.admin, 'POST', '/v1/keys', { role: 'producer' });
  assert.equal(producer.status, 201, JSON.stringify(producer.body));
  const answer = await H.api(server, producer.body.key, 'POST', '/v1/events', [event]);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  eventId = answer.body.receipts[0].event_id;
  const deadline = Date.now() + 60_000;
  while (!(await text(`/v1/events/${eventId}/proof`)).includes('\u2014 w1.test ')) {
    assert.ok(Date.now() < deadline, 'the event\'s checkpoint is cosigned by w1.test within a minute');
    await new Promise((r) => setTimeout(r, 100));
  }
  ctx = await H.browser();
  page = ctx.pages()[0] || await ctx.newPage();
  problems = H.watch(page);
  await page.goto(`${server.base}/`);
  await page.fill('#key', server.admin);
  await page.click('form.signin button[type=submit]');
  await page.waitForSelector('#result-count');
});

after(async () => {
  await ctx?.close();
  server?.stop();
  w1?.stop();
});

/** Sets the policy in the event page; answers the verdict and the witness step once re-verified. */
async function setPolicy(vkeys, threshold) {
  await page.fill('#f-witness-vkeys', vkeys.join('\n'));
  await page.fill('#f-witness-threshold', String(threshold));
  await page.evaluate(() => { document.querySelector('#verdict').dataset.old = 'yes'; });
  await page.click('#witness-form button[type=submit]');
  return verification();
}

/** Waits for a fresh verification (not one marked old before a change) to finish. */
async function verification() {
  await page.waitForSelector('#verdict:not(.pending):not([data-old])', { timeout: 20_000 });
  await page.waitForSelector('#witness-form');
  const verdict = await page.textContent('#verdict');
  const steps = await page.$$eval('ol.steps li', (lis) => lis.map((li) => li.textContent));
  return { verdict, witness: steps.filter((s) => /witness policy/.test(s)) };
}

test('with no policy the step says so and the event still verifies', async () => {
  await page.goto(`${server.base}/#/event/${eventId}`);
  const { verdict, witness } = await verification();
  assert.equal(verdict, 'Verified in this page');
  assert.deepEqual(witness, ['Not checked: no witness policy is set in this browser (set one below to require witness cosignatures)']);
  assert.equal(await page.textContent('#witness-now'), 'None set in this browser.');
});

test('a policy of 1 of 1 passes with the running witness and is shown on the page', async () => {
  const { verdict, witness } = await setPolicy([w1.vkey], 1);
  const w1Label = w1.vkey.split('+').slice(0, 2).join('+');
  assert.equal(verdict, 'Verified in this page');
  assert.deepEqual(witness, [`Passed: witness policy: 1 of 1 (cosigned by 1: ${w1Label})`]);
  assert.equal(await page.textContent('#witness-now'), `1 of 1 witnesses must cosign: ${w1Label}`);
  const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('evident.witness-policy')));
  assert.deepEqual(stored, { vkeys: [w1.vkey], threshold: 1 });
  await page.reload();
  assert.deepEqual((await verification()).witness, [`Passed: witness policy: 1 of 1 (cosigned by 1: ${w1Label})`]);
  assert.deepEqual(await H.axe(page), [], 'axe-core: serious violations on the event page with a policy');
  await H.shot(page, 'event-witness-policy-met');
});

test('a policy of 2 of 2 fails naming the witness that did not cosign', async () => {
  const { verdict, witness } = await setPolicy([w1.vkey, w2Vkey], 2);
  const [w1Label, w2Label] = [w1.vkey, w2Vkey].map((k) => k.split('+').slice(0, 2).join('+'));
  assert.equal(verdict, 'Not verified. Failed: witness policy: 2 of 2');
  assert.deepEqual(witness, [`Failed: witness policy: 2 of 2 (cosigned by 1: ${w1Label}; not cosigned by: ${w2Label})`]);
  await H.shot(page, 'event-witness-policy-not-met');
  // 1 of the same 2 passes.
  assert.equal((await setPolicy([w1.vkey, w2Vkey], 1)).verdict, 'Verified in this page');
});

test('bad policy input is refused naming the field, and clearing the policy removes the step', async () => {
  const refused = async (vkeys, threshold, message) => {
    await page.fill('#f-witness-vkeys', vkeys);
    await page.fill('#f-witness-threshold', threshold);
    await page.click('#witness-form button[type=submit]');
    await page.waitForSelector('.witness-policy .status.error');
    assert.equal(await page.textContent('.witness-policy .status.error'), `Witness policy not saved: ${message}`);
    await page.evaluate(() => document.querySelector('.witness-policy .status.error').remove());
  };
  await refused(logVkey, '1', 'witness keys, line 1: not an Ed25519 witness (cosignature/v1) key');
  await refused('', '1', 'witness keys: paste at least one witness vkey (name+hash+base64), one a line');
  await refused(`${w1.vkey}\n${w2Vkey}`, '3', 'threshold: a whole number from 1 to 2 (the number of witness keys)');
  await refused(w1.vkey, '0', 'threshold: a whole number from 1 to 1 (the number of witness keys)');
  await refused(`${w1.vkey}\n${w1.vkey}`, '1', 'witness keys: a key is listed twice');
  const [name, hash] = w1.vkey.split('+');
  await refused(`${name}+00000000+${w1.vkey.split('+').slice(2).join('+')}`, '1', `witness keys, line 1: the key hash 00000000 does not match the key (${hash})`);
  const kept = await page.evaluate(() => JSON.parse(localStorage.getItem('evident.witness-policy')));
  assert.equal(kept.threshold, 1, 'a refused policy leaves the saved one');
  await page.evaluate(() => { document.querySelector('#verdict').dataset.old = 'yes'; });
  await page.click('#witness-clear');
  const { verdict, witness } = await verification();
  assert.equal(verdict, 'Verified in this page');
  assert.match(witness[0], /^Not checked: no witness policy is set/);
  assert.deepEqual(problems, []);
});

test('a cosignature changed on the way fails the policy, naming the witness', async () => {
  // The proof as served, with one bit of w1.test's Ed25519 signature flipped in the page's copy.
  await page.route('**/proof', async (route) => {
    const served = await (await route.fetch()).text();
    const changed = served.replace(/(\u2014 w1\.test )(\S+)/, (_, head, b64) => {
      const bytes = Buffer.from(b64, 'base64');
      bytes[bytes.length - 1] ^= 1;
      return head + bytes.toString('base64');
    });
    assert.notEqual(changed, served);
    await route.fulfill({ status: 200, contentType: 'text/plain; charset=utf-8', body: changed });
  });
  try {
    const { verdict, witness } = await setPolicy([w1.vkey], 1);
    const w1Label = w1.vkey.split('+').slice(0, 2).join('+');
    assert.equal(verdict, 'Not verified. Failed: witness policy: 1 of 1');
    assert.deepEqual(witness, [`Failed: witness policy: 1 of 1 (cosigned by 0: none; cosignature does not verify: ${w1Label})`]);
  } finally { await page.unroute('**/proof'); }
  assert.deepEqual(problems, []);
});

test('a vkey whose base64 holds a + parses (log and witness keys)', async () => {
  const { createHash } = await import('node:crypto');
  const vkeyOf = (type) => {
    for (let fill = 0; ; fill += 1) {
      const material = Buffer.from([type, ...Array(32).fill(fill)]);
      const b64 = material.toString('base64');
      if (!b64.includes('+')) continue;
      const hash = createHash('sha256').update(Buffer.concat([Buffer.from('plus.test\n'), material])).digest('hex').slice(0, 8);
      return `plus.test+${hash}+${b64}`;
    }
  };
  const [logKey, witnessKey] = [vkeyOf(1), vkeyOf(4)];
  const parsed = await page.evaluate(async ([a, b]) => {
    const src = document.querySelector('script[type=module]').src.replace('app.js', 'verify.js');
    const v = await import(src);
    return [(await v.parseVkey(a)).name, (await v.parseVkey(b, 4)).text];
  }, [logKey, witnessKey]);
  assert.deepEqual(parsed, ['plus.test', witnessKey]);
});
