// The example as a user runs it (`npm start` without settings): it starts a local evident, and
// every read and change of a customer record lands in the log with its actor, purpose and
// changes; a receipt verifies offline; SIGTERM delivers what is spooled and exits cleanly.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

import { Reader } from "evident";

const HERE = path.dirname(fileURLToPath(import.meta.url));

function startApp(dir) {
  const env = {
    ...process.env,
    EVIDENT_DATA_DIR: path.join(dir, "evident-data"),
    EVIDENT_SPOOL_DIR: path.join(dir, "spool"),
    PORT: "0",
  };
  delete env.EVIDENT_API_KEY;
  delete env.EVIDENT_URL;
  const child = spawn(process.execPath, [path.join(HERE, "..", "server.js")], {
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const urls = new Promise((resolve, reject) => {
    let evident;
    createInterface({ input: child.stdout }).on("line", (line) => {
      evident ??= /evident \(local\) serving on (\S+)/.exec(line)?.[1];
      const app = /customer API listening on (\S+)/.exec(line)?.[1];
      if (app) resolve({ app, evident });
    });
    child.on("exit", (code) => reject(new Error(`the example exited with ${code} before listening`)));
  });
  return { child, urls };
}

async function call(app, method, url, { user = "alice", body, purpose } = {}) {
  const headers = {
    "x-user": user,
    ...(body && { "content-type": "application/json" }),
    ...(purpose && { "x-purpose": purpose }),
  };
  const response = await fetch(`${app}${url}`, { method, headers, body: body && JSON.stringify(body) });
  return { status: response.status, body: response.status === 204 ? undefined : await response.json() };
}

test("records customer reads and changes, and delivers them before exiting", async () => {
  if (!process.env.EVIDENT_BIN) throw new Error("set EVIDENT_BIN to the evident binary (sdks/typescript/test.sh does)");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "evident-example-"));
  const { child, urls } = startApp(dir);
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  try {
    const { app, evident } = await urls;
    const created = await call(app, "POST", "/customers", { body: { name: "Bob", email: "bob@old.example" } });
    assert.equal(created.status, 201);
    const id = created.body.id;
    assert.equal((await call(app, "GET", `/customers/${id}`, { purpose: "ticket 42" })).status, 200);
    assert.equal(
      (await call(app, "PATCH", `/customers/${id}`, { body: { email: "bob@new.example" } })).body.email,
      "bob@new.example",
    );
    assert.equal((await call(app, "GET", "/customers/cus_missing", { user: "mallory" })).status, 404);
    assert.equal((await call(app, "DELETE", `/customers/${id}`)).status, 204);
    assert.match(await (await fetch(`${app}/metrics`)).text(), /^evident_spool_depth_events \d+$/m);

    child.kill("SIGTERM");
    assert.deepEqual(await exited, { code: 0, signal: null }, "the example flushes and exits cleanly");

    // The app is gone; read its trail from a fresh local server on the same data dir.
    const keys = JSON.parse(fs.readFileSync(path.join(dir, "evident-data", "example-keys.json"), "utf8"));
    assert.ok(evident && keys.reader);
    const { child: again, urls: againUrls } = startApp(dir);
    try {
      const reader = new Reader({ url: (await againUrls).evident, apiKey: keys.reader });
      // The app's own events; at night the default off-hours rule adds findings about the customer
      // (source "evident"), which are not the app's to assert.
      const all = (await reader.search({ subject: id, order: "oldest" })).events.map((view) => view.event);
      const trail = all.filter((e) => e.source !== "evident");
      assert.ok(
        all.every((e) => e.source !== "evident" || e.type.startsWith("evident.finding.")),
        JSON.stringify(all),
      );
      assert.deepEqual(
        trail.map((e) => [e.type, e.action, e.actor.id, e.outcome]),
        [
          ["customer.record.created", "create", "alice", "success"],
          ["customer.record.viewed", "read", "alice", "success"],
          ["customer.record.updated", "update", "alice", "success"],
          ["customer.record.deleted", "delete", "alice", "success"],
        ],
      );
      assert.equal(trail[1].reason, "ticket 42");
      assert.deepEqual(
        trail[2].changes.map((c) => c.field),
        ["/email"],
      );
      const missing = (await reader.search({ subject: "cus_missing" })).events
        .map((view) => view.event)
        .filter((e) => e.source !== "evident");
      assert.deepEqual(
        missing.map((e) => [e.actor.id, e.outcome, e.reason]),
        [["mallory", "failure", "not_found"]],
      );
      const verified = await reader.verifyEvent(trail[2].event_id, await reader.vkeys());
      assert.equal(verified.eventId, trail[2].event_id);
    } finally {
      again.kill("SIGTERM");
      await new Promise((resolve) => again.on("exit", resolve));
    }
  } finally {
    child.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
