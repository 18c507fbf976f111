/**
 * The spool's promise under SIGKILL: a child process records events and is killed mid-stream,
 * twice (the second child reopens the spool the first left behind); after a restart every event
 * whose `record` resolved is in the log exactly once, and no event is there twice.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, before, it } from "node:test";

import { Client, Reader } from "../src/index.js";
import { type Serve, startServer, tempDir } from "./helpers/server.js";

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), "helpers", "record-child.js");

let serve: Serve;
before(async () => {
  serve = await startServer();
});
after(async () => {
  await serve.stop();
});

/** Runs the child until it printed `killAfter` ids, SIGKILLs it, and answers the ids it printed. */
async function recordAndKill(args: string[], killAfter: number): Promise<string[]> {
  const child = spawn(process.execPath, [CHILD, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const printed: string[] = [];
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line === "done")
        return reject(new Error(`the child recorded everything before ${killAfter} ids were printed`));
      printed.push(line);
      if (printed.length === killAfter) {
        child.kill("SIGKILL");
        resolve();
      }
    });
    child.on("exit", () => resolve());
  });
  assert.equal(await exited, "SIGKILL", "the child was killed, it did not exit");
  return printed;
}

it("delivers every event whose record resolved exactly once after SIGKILL and restart", async () => {
  const spoolDir = tempDir("sigkill");
  const source = "//sdk-test/sigkill";
  const producer = await serve.key("producer");
  const common = [serve.base, producer, spoolDir, source];
  const first = await recordAndKill([...common, "a", "3000"], 1200);
  const second = await recordAndKill([...common, "b", "3000"], 700);
  const resolved = [...first, ...second];

  const restarted = new Client({ url: serve.base, apiKey: producer, spoolDir });
  // The kills landed while events were still spooled, so the restart has work to do.
  assert.ok(restarted.metrics().depth > 0, "the killed children left undelivered events behind");
  assert.equal(await restarted.flush(30_000), true, `the spool drains: ${JSON.stringify(restarted.metrics())}`);
  await restarted.close();

  const reader = new Reader({ url: serve.base, apiKey: await serve.key("reader") });
  const counts = new Map<string, number>();
  for await (const view of reader.searchAll({ source, order: "oldest", limit: 1000 })) {
    counts.set(view.event.id, (counts.get(view.event.id) ?? 0) + 1);
  }
  const twice = [...counts].filter(([, n]) => n > 1);
  assert.deepEqual(twice, [], "no event is in the log twice");
  const missing = resolved.filter((id) => counts.get(id) !== 1);
  assert.deepEqual(
    missing,
    [],
    `every resolved record is in the log (${resolved.length} resolved, ${counts.size} in the log)`,
  );
});
