// Spool throughput of the TypeScript client, with its peer measured in the same run: how many
// events/s `record` accepts (durable in the spool) and how fast they are delivered, against an
// application posting each event itself and awaiting the answer (no spool, nothing kept if the
// server is down). Also the disk's floor: appends with one fdatasync each.
//
//   node bench/ts-spool/bench.mjs URL PRODUCER_KEY WORK_DIR
import * as fs from "node:fs";
import * as path from "node:path";

import { Client } from "../../sdks/typescript/dist/index.js";

const [url, apiKey, workDir] = process.argv.slice(2);
const CONCURRENCY = 64;

let serial = 0;
function event(run) {
  serial++;
  return {
    id: `${run}-${serial}`,
    source: "//bench.example.com/app",
    type: "customer.record.viewed",
    action: "read",
    time: new Date().toISOString(),
    actor: { id: `u-${serial % 50}`, type: "user" },
    subject: `cus_${serial % 1000}`,
    targets: [{ type: "customer", id: `cus_${serial % 1000}` }],
    outcome: "success",
    origin: { ip: "192.0.2.7", service: "bench" },
  };
}

/** Runs `one` `count` times with `concurrency` callers; seconds taken. */
async function drive(count, concurrency, one) {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        await one();
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

async function postDirect(run) {
  const response = await fetch(`${url}/v1/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify(event(run)),
  });
  if (response.status !== 200) throw new Error(`POST: ${response.status} ${await response.text()}`);
  await response.arrayBuffer();
}

function fsyncFloor(count) {
  const file = path.join(workDir, "fsync-floor");
  const fd = fs.openSync(file, "a");
  const line = `${JSON.stringify(event("floor"))}\n`;
  const started = performance.now();
  for (let n = 0; n < count; n++) {
    fs.writeSync(fd, line);
    fs.fdatasyncSync(fd);
  }
  const seconds = (performance.now() - started) / 1000;
  fs.closeSync(fd);
  return seconds;
}

const rows = [];
function row(name, count, seconds, note) {
  rows.push({ name, count, seconds, rate: count / seconds, note });
}

row("disk floor: append + fdatasync, one at a time", 500, fsyncFloor(500), "what one unbatched durable write costs");

const direct1 = await drive(300, 1, () => postDirect("d1"));
row(
  "peer: POST each event, await answer, 1 caller",
  300,
  direct1,
  "no spool: an outage loses events or fails requests",
);
const direct64 = await drive(2000, CONCURRENCY, () => postDirect("d64"));
row(`peer: POST each event, await answer, ${CONCURRENCY} callers`, 2000, direct64, "same");

for (const [concurrency, count] of [
  [1, 2000],
  [CONCURRENCY, 20000],
]) {
  const spoolDir = path.join(workDir, `spool-${concurrency}`);
  const client = new Client({ url, apiKey, spoolDir, maxSpoolBytes: 256 << 20 });
  const run = `s${concurrency}`;
  const started = performance.now();
  const recorded = await drive(count, concurrency, () => client.record(event(run)));
  if (!(await client.flush(120_000))) throw new Error(`not delivered: ${JSON.stringify(client.metrics())}`);
  const delivered = (performance.now() - started) / 1000;
  const { acknowledged, batchesSent } = client.metrics();
  await client.close();
  if (acknowledged !== count) throw new Error(`${acknowledged} of ${count} acknowledged`);
  row(
    `record, ${concurrency} caller${concurrency > 1 ? "s" : ""}: accepted (durable in the spool)`,
    count,
    recorded,
    "record resolved",
  );
  row(
    `record, ${concurrency} caller${concurrency > 1 ? "s" : ""}: delivered (flush true)`,
    count,
    delivered,
    `${batchesSent} requests, ${(count / batchesSent).toFixed(0)} events each`,
  );
}

console.log("| workload | events | seconds | events/s | note |");
console.log("| --- | ---: | ---: | ---: | --- |");
for (const r of rows) {
  console.log(
    `| ${r.name} | ${r.count} | ${r.seconds.toFixed(2)} | ${Math.round(r.rate).toLocaleString("en")} | ${r.note} |`,
  );
}
