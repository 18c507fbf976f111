/**
 * The process the SIGKILL test kills: records `count` events named `<prefix>-<n>` in waves of 25
 * concurrent `record` calls and prints each id on stdout once its `record` resolved (stdout to
 * a pipe is synchronous on Linux, so a printed id is a resolved one). Then it waits to be killed.
 *
 * Usage: node record-child.js URL API_KEY SPOOL_DIR SOURCE PREFIX COUNT
 */

import { Client } from "../../src/index.js";
import { sampleEvent } from "./server.js";

const [url, apiKey, spoolDir, source, prefix, count] = process.argv.slice(2);
const client = new Client({
  url: url!,
  apiKey: apiKey!,
  spoolDir: spoolDir!,
  source: source!,
  initialBackoffMs: 20,
  maxBackoffMs: 200,
});
const total = Number(count);
for (let start = 0; start < total; start += 25) {
  const wave = Array.from({ length: Math.min(25, total - start) }, (_, n) => `${prefix}-${start + n}`);
  await Promise.all(
    wave.map(async (id) => {
      await client.record(sampleEvent(id, source!));
      process.stdout.write(`${id}\n`);
    }),
  );
}
process.stdout.write("done\n");
setInterval(() => {}, 1000);
