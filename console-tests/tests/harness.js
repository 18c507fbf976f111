// What the console tests share: a real `evident serve` filled by `evident demo`, Debian's
// Chromium driven by playwright-core (never a downloaded browser), axe-core, screenshots.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
export const ROOT = resolve(import.meta.dirname, '../..');
export const EVIDENT = process.env.EVIDENT_BIN || join(ROOT, 'target/debug/evident');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SHOTS = process.env.SCREENSHOT_DIR || join(ROOT, 'target/console-screenshots');
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** The environment without settings that would point the server elsewhere. */
function clean(env) {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !/^EVIDENT_(CONFIG|LISTEN|DATA_DIR|DATABASE_URL|URL|API_KEY)$/.test(name)));
}

/** Starts `evident serve` on a fresh data directory; answers {base, admin, dataDir, stop}. */
export async function serve(env = {}) {
  if (!existsSync(EVIDENT)) throw new Error(`${EVIDENT} is missing: build it (cargo build -p evident-cli)`);
  const dir = mkdtempSync(join(tmpdir(), 'evident-console-'));
  const dataDir = join(dir, 'data');
  const child = spawn(EVIDENT, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    env: { ...clean(process.env), ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const deadline = Date.now() + 60_000;
  while (!(/listening on (\S+)/.test(err) && /admin key: (\S+)/.test(out))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`evident serve did not start:\n${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    base: /listening on (\S+)/.exec(err)[1], admin: /admin key: (\S+)/.exec(out)[1], dataDir, dir,
    stop: () => child.kill('SIGTERM'),
  };
}

/** Runs the evident CLI against the server; answers stdout. */
export function cli(server, key, ...args) {
  return execFileSync(EVIDENT, args, { env: { ...process.env, EVIDENT_URL: server.base, EVIDENT_API_KEY: key }, encoding: 'utf8' });
}

/** A JSON API call with a bearer key. */
export async function api(server, key, method, path, body) {
  const response = await fetch(server.base + path, {
    method, headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json().catch(() => null) };
}

/** Debian's Chromium with a fresh profile; fails loudly when it is not installed. */
export async function browser() {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is missing at ${CHROMIUM}: apt-get install -y chromium`);
  const profile = mkdtempSync(join(tmpdir(), 'evident-chromium-'));
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/** Collects CSP violations and page errors, which fail the tests. */
export function watch(page) {
  const problems = [];
  page.on('console', (m) => { if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return problems;
}

/** axe-core on the page: answers the serious and critical violations. */
export async function axe(page) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')})`);
}

export async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
