// For trying the example without setting anything up: starts a local `evident serve` in
// ./.evident-data (or EVIDENT_DATA_DIR), creates a producer key for the app and a reader key for
// you on its first start, and keeps them in .evident-data/example-keys.json (the admin key is
// shown only once, so the keys are saved for the next start).

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));

function findBinary() {
  const candidates = [
    process.env.EVIDENT_BIN,
    path.join(HERE, "../../target/debug/evident"),
    path.join(HERE, "../../target/release/evident"),
    ...(process.env.PATH ?? "").split(path.delimiter).map((dir) => path.join(dir, "evident")),
  ].filter(Boolean);
  const found = candidates.find((file) => fs.existsSync(file));
  if (!found) {
    throw new Error(
      "no evident binary found: build it with `cargo build -p evident-cli` at the repository root, " +
        "set EVIDENT_BIN, or point the app at a running server with EVIDENT_URL and EVIDENT_API_KEY",
    );
  }
  return found;
}

async function createKey(url, adminKey, role) {
  const response = await fetch(`${url}/v1/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: JSON.stringify({ role, label: `node-express example (${role})` }),
  });
  const body = await response.json();
  if (response.status !== 201) throw new Error(`POST /v1/keys: ${response.status} ${JSON.stringify(body)}`);
  return body.key;
}

export async function startLocalEvident() {
  const dataDir = path.resolve(process.env.EVIDENT_DATA_DIR ?? path.join(HERE, ".evident-data"));
  const keysFile = path.join(dataDir, "example-keys.json");
  const env = { ...process.env };
  for (const name of ["EVIDENT_CONFIG", "EVIDENT_LISTEN", "EVIDENT_DATA_DIR", "EVIDENT_DATABASE_URL"]) delete env[name];
  const child = spawn(findBinary(), ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let adminKey;
  createInterface({ input: child.stdout }).on("line", (line) => {
    if (line.startsWith("admin key: ")) adminKey = line.slice("admin key: ".length);
  });
  const url = await new Promise((resolve, reject) => {
    const seen = [];
    createInterface({ input: child.stderr }).on("line", (line) => {
      seen.push(line);
      const match = /listening on (http:\/\/\S+)/.exec(line);
      if (match) resolve(match[1]);
    });
    child.on("exit", (code) => reject(new Error(`evident serve exited with ${code}:\n${seen.join("\n")}`)));
  });
  let keys;
  if (fs.existsSync(keysFile)) {
    keys = JSON.parse(fs.readFileSync(keysFile, "utf8"));
  } else if (adminKey) {
    keys = { producer: await createKey(url, adminKey, "producer"), reader: await createKey(url, adminKey, "reader") };
    fs.writeFileSync(keysFile, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600 });
  } else {
    child.kill("SIGTERM");
    throw new Error(`${dataDir} holds a log but no ${path.basename(keysFile)}: remove ${dataDir} to start afresh`);
  }
  console.log(`evident (local) serving on ${url} (data in ${dataDir})`);
  return {
    url,
    dataDir,
    producerKey: keys.producer,
    readerKey: keys.reader,
    printHelp(port) {
      const app = `http://127.0.0.1:${port}`;
      console.log(`
Try it:
  curl -s -XPOST ${app}/customers -H 'x-user: alice' -H 'content-type: application/json' -d '{"name":"Bob","email":"bob@example.com"}'
  curl -s ${app}/customers/<id> -H 'x-user: alice' -H 'x-purpose: support ticket 42'
  curl -s -XPATCH ${app}/customers/<id> -H 'x-user: alice' -H 'content-type: application/json' -d '{"email":"bob@new.example"}'
See the audit trail (reader key):
  curl -s '${url}/v1/events?source=//example.com/customer-api' -H 'authorization: Bearer ${keys.reader}'
Spool metrics: ${app}/metrics`);
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
