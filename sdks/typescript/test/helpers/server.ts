/**
 * A real `evident serve` for the tests: the binary from `EVIDENT_BIN` or the workspace's
 * `target/debug/evident` (test.sh builds it), on a port the system picks (or a given one), in a
 * temporary data directory. A missing binary fails loudly.
 */

import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The checkout's root (this file runs from sdks/typescript/build/test/helpers). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../..");

export function evidentBinary(): string {
  const binary = process.env.EVIDENT_BIN || path.join(REPO_ROOT, "target/debug/evident");
  if (!fs.existsSync(binary)) {
    throw new Error(
      `the evident binary is missing at ${binary}: run \`cargo build -p evident-cli\` or set EVIDENT_BIN`,
    );
  }
  return binary;
}

const made: string[] = [];
process.on("exit", () => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

/** A new temporary directory, removed when the test process exits. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `evident-ts-${prefix}-`));
  made.push(dir);
  return dir;
}

export interface Serve {
  base: string;
  /** The admin key the first start printed ("" on a restart). */
  admin: string;
  dataDir: string;
  child: ChildProcess;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  /** A new key of `role` in the default tenant (needs the admin key). */
  key(role: string): Promise<string>;
}

/** Starts `evident serve` on `dataDir` (new temp dir by default) and waits until it listens. */
export async function startServer(
  options: { dataDir?: string; listen?: string; env?: Record<string, string>; admin?: string } = {},
): Promise<Serve> {
  const dataDir = options.dataDir ?? path.join(tempDir("data"), "data");
  const env = { ...process.env, ...options.env };
  delete env.EVIDENT_CONFIG;
  delete env.EVIDENT_LISTEN;
  delete env.EVIDENT_DATA_DIR;
  const child = spawn(evidentBinary(), ["serve", "--listen", options.listen ?? "127.0.0.1:0", "--data-dir", dataDir], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const seen: string[] = [];
  let admin = options.admin ?? "";
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line.startsWith("admin key: ")) admin = line.slice("admin key: ".length);
  });
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`evident serve did not listen within 60 s:\n${seen.join("\n")}`)),
      60_000,
    );
    createInterface({ input: child.stderr! }).on("line", (line) => {
      seen.push(line);
      const match = /listening on (http:\/\/\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`evident serve exited with ${code}:\n${seen.join("\n")}`));
    });
  });
  // The admin key line comes before the listening line on a first start.
  const serve: Serve = {
    base,
    get admin() {
      return admin;
    },
    dataDir,
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
    async key(role: string) {
      const response = await fetch(`${base}/v1/keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify({ role }),
      });
      const body = (await response.json()) as { key?: string };
      if (response.status !== 201 || !body.key)
        throw new Error(`POST /v1/keys: ${response.status} ${JSON.stringify(body)}`);
      return body.key;
    },
  };
  return serve;
}

/** A port that was free a moment ago (nothing listens on it now). */
export async function freePort(): Promise<number> {
  const net = await import("node:net");
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** A valid event for the tests. */
export function sampleEvent(id: string, source: string, extra: Record<string, unknown> = {}) {
  return {
    id,
    source,
    type: "customer.record.viewed",
    action: "read" as const,
    time: "2026-11-01T10:00:00Z",
    actor: { id: "u-1", type: "user" as const },
    subject: "cust-1",
    targets: [{ type: "customer", id: "cust-1" }],
    outcome: "success" as const,
    origin: { service: "sdk-test" },
    ...extra,
  };
}
