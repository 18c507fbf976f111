/**
 * The Client against a real `evident serve`: delivery with receipts that verify offline,
 * dead letters, delivery after an outage, batch splitting on the server's limits, the full-spool
 * policy, the spool lock, a torn spool tail, and what bad options and events are refused with.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import {
  ApiError,
  Client,
  ClosedError,
  DEAD_LETTER_FILE,
  hashFromBase64,
  InvalidInputError,
  type ItemResult,
  openCheckpoint,
  Reader,
  SpoolFullError,
  SpoolLockedError,
  VerificationError,
  verifyConsistency,
  verifyReceipt,
} from "../src/index.js";
import { startProxy } from "./helpers/proxy.js";
import { evidentBinary, freePort, sampleEvent, type Serve, startServer, tempDir } from "./helpers/server.js";

let serve: Serve;
let producer: string;
let reader: Reader;
let vkeys: string[];

before(async () => {
  serve = await startServer();
  producer = await serve.key("producer");
  reader = new Reader({ url: serve.base, apiKey: await serve.key("reader") });
  vkeys = await reader.vkeys();
});

after(async () => {
  await serve.stop();
});

/** The ids of every event of `source` in the log, in log order. */
async function idsInLog(source: string, from: Reader = reader): Promise<string[]> {
  const ids: string[] = [];
  for await (const view of from.searchAll({ source, order: "oldest", limit: 1000 })) ids.push(view.event.id);
  return ids;
}

function deadLetters(spoolDir: string): { status: string; errors: { reason: string }[]; event: { id: string } }[] {
  const file = path.join(spoolDir, DEAD_LETTER_FILE);
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

describe("delivery", () => {
  it("delivers every recorded event once, with receipts that verify offline", async () => {
    const receipts: ItemResult[] = [];
    const source = "//sdk-test/delivery";
    const client = new Client({
      url: serve.base,
      apiKey: producer,
      spoolDir: tempDir("spool"),
      source,
      vkeys,
      onReceipt: (result) => receipts.push(result),
    });
    const ids = await Promise.all(
      Array.from({ length: 40 }, (_, n) => {
        const { source: _source, id: _id, ...event } = sampleEvent(`ignored-${n}`, source);
        return client.record(n % 2 === 0 ? { ...event, id: `d-${n}` } : event);
      }),
    );
    assert.equal(ids[0], "d-0");
    assert.match(ids[1]!, /^[0-9a-f-]{36}$/, "a missing id is filled in with a UUID");
    assert.equal(await client.flush(10_000), true);
    const metrics = client.metrics();
    assert.deepEqual([metrics.depth, metrics.depthBytes, metrics.oldestAgeMs], [0, 0, 0]);
    assert.equal(metrics.acknowledged, 40);
    assert.equal(metrics.receiptsUnverified, 0, "every receipt's checkpoint verifies on arrival");
    await client.close();

    assert.deepEqual((await idsInLog(source)).sort(), [...ids].sort());
    assert.equal(receipts.length, 40);
    assert.ok(receipts.every((r) => r.status === "stored"));
    const eventId = receipts[7]!.event_id!;
    const verified = await reader.verifyEvent(eventId, vkeys);
    assert.equal(verified.eventId, eventId);
    assert.equal(verified.index, BigInt(receipts[7]!.index!));
    // A changed entry does not verify against the same receipt.
    const proof = await reader.proof(eventId);
    const entry = Buffer.from(await reader.entry(eventId))
      .toString()
      .replace('"outcome":"success"', '"outcome":"failure"');
    assert.throws(
      () => verifyReceipt({ proof, entry, vkeys }),
      (err: VerificationError) => err.failure === "root_mismatch",
    );
  });

  it("reports receipts whose checkpoint is not signed by the pinned key", async () => {
    const errors: Error[] = [];
    const otherLog = "example.com/evident-test+9dd0ebfe+ASC71x/0M5urdEEfgkXsrvkdXP7mh6o6XGYgVhOTf+bN";
    const client = new Client({
      url: serve.base,
      apiKey: producer,
      spoolDir: tempDir("spool"),
      vkeys: [otherLog],
      onError: (err) => errors.push(err),
    });
    await client.record(sampleEvent("unverified-1", "//sdk-test/unverified"));
    assert.equal(await client.flush(10_000), true);
    assert.equal(client.metrics().receiptsUnverified, 1);
    assert.match(errors[0]!.message, /does not verify: no signature by a trusted key/);
    await client.close();
  });

  it("moves rejected and conflicting events to the dead-letter file with the reason", async () => {
    const spoolDir = tempDir("spool");
    const source = "//sdk-test/dead-letter";
    const client = new Client({ url: serve.base, apiKey: producer, spoolDir });
    await client.record(sampleEvent("dl-1", source));
    await client.record({ ...sampleEvent("dl-2", source), action: "bogus" as "read" });
    assert.equal(await client.flush(10_000), true);
    await client.record({ ...sampleEvent("dl-1", source), outcome: "unknown" });
    await client.record(sampleEvent("dl-3", source));
    assert.equal(await client.flush(10_000), true);
    const metrics = client.metrics();
    assert.deepEqual([metrics.acknowledged, metrics.deadLettered, metrics.depth], [2, 2, 0]);
    await client.close();

    assert.deepEqual(await idsInLog(source), ["dl-1", "dl-3"]);
    const letters = deadLetters(spoolDir);
    assert.deepEqual(
      letters.map((l) => [l.event.id, l.status]),
      [
        ["dl-2", "rejected"],
        ["dl-1", "conflict"],
      ],
    );
    assert.match(letters[0]!.errors[0]!.reason, /action must be one of/);
    assert.match(letters[1]!.errors[0]!.reason, /stored with other content/);
  });

  it("splits batches the server finds too large and dead-letters an event it never takes", async () => {
    const small = await startServer({ env: { EVIDENT_MAX_BATCH_EVENTS: "4", EVIDENT_MAX_BODY_BYTES: "20000" } });
    try {
      const spoolDir = tempDir("spool");
      const source = "//sdk-test/split";
      const smallReader = new Reader({ url: small.base, apiKey: await small.key("reader") });
      const client = new Client({
        url: small.base,
        apiKey: await small.key("producer"),
        spoolDir,
        maxBatchEvents: 100,
      });
      const ids = Array.from({ length: 10 }, (_, n) => `split-${n}`);
      await Promise.all(ids.slice(0, 5).map((id) => client.record(sampleEvent(id, source))));
      await client.record(
        sampleEvent("split-big", source, { metadata: { note: "x".repeat(1000) }, reason: "y".repeat(25_000) }),
      );
      await Promise.all(ids.slice(5).map((id) => client.record(sampleEvent(id, source))));
      assert.equal(await client.flush(15_000), true);
      assert.equal(client.metrics().deadLettered, 1);
      await client.close();
      assert.deepEqual(await idsInLog(source, smallReader), ids);
      const letters = deadLetters(spoolDir);
      assert.deepEqual(
        letters.map((l) => [l.event.id, l.status]),
        [["split-big", "rejected"]],
      );
      assert.match(letters[0]!.errors[0]!.reason, /^413 .*larger than 20000 bytes/);
    } finally {
      await small.stop();
    }
  });
});

describe("reading", () => {
  it("agrees with `evident verify` on a receipt and its entry, intact and changed", async () => {
    const client = new Client({ url: serve.base, apiKey: producer, spoolDir: tempDir("spool") });
    await client.record(sampleEvent("interop-1", "//sdk-test/interop"));
    assert.equal(await client.flush(10_000), true);
    await client.close();
    const [view] = (await reader.search({ source: "//sdk-test/interop" })).events;
    const dir = tempDir("interop");
    const proofFile = path.join(dir, "event.tlog-proof");
    fs.writeFileSync(proofFile, await reader.proof(view!.event_id));
    const entry = Buffer.from(await reader.entry(view!.event_id));
    const changed = Buffer.from(entry.toString().replace('"interop-1"', '"interop-2"'));
    for (const [bytes, expected] of [
      [entry, true],
      [changed, false],
    ] as const) {
      const entryFile = path.join(dir, "entry.json");
      fs.writeFileSync(entryFile, bytes);
      const args = ["verify", proofFile, "--event", entryFile, "--vkey", vkeys[0]!];
      const cli = spawnSync(evidentBinary(), args, { encoding: "utf8" });
      let ours = true;
      try {
        verifyReceipt({ proof: fs.readFileSync(proofFile, "utf8"), entry: bytes, vkeys });
      } catch (err) {
        assert.ok(err instanceof VerificationError);
        ours = false;
      }
      assert.equal(cli.status === 0, expected, `evident verify: ${cli.stdout} ${cli.stderr}`);
      assert.equal(ours, expected, "this library agrees");
    }
  });

  it("proves two of the log's checkpoints consistent", async () => {
    const client = new Client({ url: serve.base, apiKey: producer, spoolDir: tempDir("spool") });
    await client.record(sampleEvent("consistency-1", "//sdk-test/consistency"));
    assert.equal(await client.flush(10_000), true);
    const older = openCheckpoint(await reader.checkpoint(), vkeys, "evident.localhost/default");
    await client.record(sampleEvent("consistency-2", "//sdk-test/consistency"));
    assert.equal(await client.flush(10_000), true);
    await client.close();
    const newer = openCheckpoint(await reader.checkpoint(), vkeys, "evident.localhost/default");
    assert.ok(newer.size > older.size);
    const answer = await reader.consistency(Number(older.size), Number(newer.size));
    const proof = answer.proof.map((hash) => hashFromBase64(hash));
    verifyConsistency(older.size, newer.size, older.root, newer.root, proof);
    assert.throws(() => verifyConsistency(older.size, newer.size, newer.root, newer.root, proof), VerificationError);
  });

  it("answers problems as ApiError with the status and the server's words", async () => {
    const cases: [Reader, () => (r: Reader) => Promise<unknown>, number, RegExp][] = [
      [new Reader({ url: serve.base, apiKey: producer }), () => (r) => r.search(), 403, /role producer may not read/],
      [reader, () => (r) => r.event("not-a-uuid"), 400, /event_id|UUID/],
      [reader, () => (r) => r.proof("01a23b3e-98c3-72a5-8aa5-9cd7afc87df0"), 404, /./],
      [
        new Reader({ url: serve.base, apiKey: "evk_0000000000000000_nope" }),
        () => (r) => r.vkeys(),
        401,
        /authentication required/,
      ],
    ];
    for (const [who, call, status, words] of cases) {
      await assert.rejects(
        call()(who),
        (err: ApiError) => err instanceof ApiError && err.status === status && words.test(err.message),
      );
    }
    assert.throws(() => new Reader({ url: "nope", apiKey: "k" }), InvalidInputError);
    assert.throws(() => new Reader({ url: serve.base, apiKey: "" }), InvalidInputError);
  });
});

describe("outages", () => {
  it("keeps events while the server is down and delivers them when it is back", async () => {
    const port = await freePort();
    const listen = `127.0.0.1:${port}`;
    const first = await startServer({ listen });
    const key = await first.key("producer");
    const readKey = await first.key("reader");
    await first.stop();

    const spoolDir = tempDir("spool");
    const source = "//sdk-test/outage";
    const errors: Error[] = [];
    const client = new Client({
      url: `http://${listen}`,
      apiKey: key,
      spoolDir,
      initialBackoffMs: 20,
      maxBackoffMs: 200,
      onError: (err) => errors.push(err),
    });
    const ids = Array.from({ length: 20 }, (_, n) => `outage-${n}`);
    for (const id of ids) await client.record(sampleEvent(id, source));
    assert.equal(await client.flush(300), false, "nothing is acknowledged while the server is down");
    const metrics = client.metrics();
    assert.equal(metrics.depth, 20);
    assert.ok(metrics.oldestAgeMs >= 300, `oldest age ${metrics.oldestAgeMs} ms`);
    assert.ok(metrics.retries >= 1);
    assert.match(metrics.lastError ?? "", /ECONNREFUSED/);
    assert.match(client.metricsText(), /^evident_spool_depth_events 20$/m);

    const again = await startServer({ dataDir: first.dataDir, listen, admin: first.admin });
    try {
      assert.equal(await client.flush(15_000), true);
      assert.equal(client.metrics().depth, 0);
      await client.close();
      assert.deepEqual(await idsInLog(source, new Reader({ url: again.base, apiKey: readKey })), ids);
      assert.ok(errors.length >= 1);
    } finally {
      await again.stop();
    }
  });
});

describe("retries", () => {
  it("keeps events and says why while the key is wrong; never drops them", async () => {
    const readerKey = await serve.key("reader");
    for (const [apiKey, expected] of [
      ["evk_0000000000000000_nope", /401 authentication required/],
      [readerKey, /403 forbidden: role reader may not append events/],
    ] as const) {
      const errors: Error[] = [];
      const client = new Client({
        url: serve.base,
        apiKey,
        spoolDir: tempDir("spool"),
        initialBackoffMs: 10,
        maxBackoffMs: 50,
        onError: (err) => errors.push(err),
      });
      await client.record(sampleEvent("wrong-key", "//sdk-test/wrong-key"));
      assert.equal(await client.flush(400), false);
      const metrics = client.metrics();
      assert.equal(metrics.depth, 1, "the event stays spooled");
      assert.equal(metrics.deadLettered, 0);
      assert.ok(metrics.retries >= 2, `${metrics.retries} retries`);
      assert.match(metrics.lastError ?? "", expected);
      assert.match(errors[0]!.message, expected);
      await client.close();
    }
  });

  it("honours Retry-After, survives lost answers and resets, and sends the same bytes every time", async () => {
    const proxy = await startProxy(serve.base, ["503", "lost", "reset", "pass"]);
    try {
      const source = "//sdk-test/retries";
      const statuses: string[] = [];
      const client = new Client({
        url: proxy.url,
        apiKey: producer,
        spoolDir: tempDir("spool"),
        initialBackoffMs: 10,
        maxBackoffMs: 50,
        onReceipt: (result) => statuses.push(result.status),
      });
      const ids = ["retry-1", "retry-2", "retry-3", "retry-4", "retry-5"];
      await Promise.all(ids.map((id) => client.record(sampleEvent(id, source))));
      assert.equal(await client.flush(15_000), true);
      assert.equal(client.metrics().retries, 3);
      await client.close();

      assert.deepEqual(await idsInLog(source), ids, "each event once, though the server stored a batch twice");
      assert.deepEqual(statuses, ["duplicate", "duplicate", "duplicate", "duplicate", "duplicate"]);
      const posts = proxy.seen.filter((request) => request.path === "/v1/events");
      assert.deepEqual(
        posts.map((request) => request.fault),
        ["503", "lost", "reset", "pass"],
      );
      assert.ok(
        posts[1]!.at - posts[0]!.at >= 950,
        `the retry after 503 came ${posts[1]!.at - posts[0]!.at} ms later, Retry-After said 1 s`,
      );
      assert.ok(
        posts.every((request) => request.body === posts[0]!.body),
        "every try sends the same bytes",
      );
    } finally {
      await proxy.close();
    }
  });
});

describe("the spool", () => {
  it("refuses an event that does not fit, writes nothing of it, and takes events again once delivered", async () => {
    const spoolDir = tempDir("spool");
    const source = "//sdk-test/full";
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const offline = new Client({ url: nowhere, apiKey: producer, spoolDir, maxSpoolBytes: 4096 });
    const accepted: string[] = [];
    let refused: SpoolFullError | undefined;
    for (let n = 0; n < 100 && refused === undefined; n++) {
      try {
        accepted.push(await offline.record(sampleEvent(`full-${n}`, source)));
      } catch (err) {
        assert.ok(err instanceof SpoolFullError, `${err}`);
        refused = err;
      }
    }
    assert.ok(refused !== undefined, "the spool filled up");
    assert.ok(accepted.length >= 5, `${accepted.length} events fit in 4096 bytes`);
    assert.equal(refused.code, "EVIDENT_SPOOL_FULL");
    assert.equal(refused.maxSpoolBytes, 4096);
    assert.ok(refused.spoolBytes + refused.eventBytes > 4096);
    assert.match(refused.message, /NOT recorded/);
    const refusedId = `full-${accepted.length}`;
    const onDisk = fs
      .readdirSync(spoolDir)
      .map((name) => fs.readFileSync(path.join(spoolDir, name), "utf8"))
      .join("");
    assert.ok(!onDisk.includes(`"${refusedId}"`), "nothing of the refused event is written");
    assert.equal(offline.metrics().spoolFull, 1);
    await assert.rejects(offline.record(sampleEvent("full-again", source)), SpoolFullError);
    await offline.close();

    const online = new Client({ url: serve.base, apiKey: producer, spoolDir, maxSpoolBytes: 4096 });
    assert.equal(online.metrics().depth, accepted.length, "the spooled events survive the restart");
    assert.equal(await online.flush(10_000), true);
    await online.record(sampleEvent("full-after", source));
    assert.equal(await online.flush(10_000), true);
    await online.close();
    assert.deepEqual(await idsInLog(source), [...accepted, "full-after"]);
  });

  it("is held by one Client at a time; a lock left by a dead process is taken over", async () => {
    const spoolDir = tempDir("spool");
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const first = new Client({ url: nowhere, apiKey: producer, spoolDir });
    assert.throws(() => new Client({ url: nowhere, apiKey: producer, spoolDir }), SpoolLockedError);
    await first.close();
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    fs.writeFileSync(path.join(spoolDir, "lock"), `${dead.stdout}\n`);
    const second = new Client({ url: nowhere, apiKey: producer, spoolDir });
    assert.equal(fs.readFileSync(path.join(spoolDir, "lock"), "utf8").trim(), String(process.pid));
    await second.close();
    await second.close();
    await assert.rejects(second.record(sampleEvent("after-close", "//x")), ClosedError);
  });

  it("does not keep the process alive: a script that ends without close leaves its events spooled", async () => {
    const spoolDir = tempDir("spool");
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const index = new URL("../src/index.js", import.meta.url).href;
    const script = `
      const { Client } = await import(${JSON.stringify(index)});
      const client = new Client({ url: ${JSON.stringify(nowhere)}, apiKey: "k", spoolDir: ${JSON.stringify(spoolDir)} });
      await client.record(${JSON.stringify(sampleEvent("no-close", "//sdk-test/no-close"))});`;
    const ended = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      timeout: 20_000,
      encoding: "utf8",
    });
    assert.equal(ended.status, 0, `the script ended by itself: ${ended.stderr} ${ended.error ?? ""}`);
    const next = new Client({ url: nowhere, apiKey: producer, spoolDir });
    assert.equal(next.metrics().depth, 1, "its event waits in the spool");
    await next.close();
  });

  it("recovers from a torn last line: the events before it are sent, the torn one never", async () => {
    const spoolDir = tempDir("spool");
    const source = "//sdk-test/torn";
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const offline = new Client({ url: nowhere, apiKey: producer, spoolDir });
    for (const id of ["torn-1", "torn-2", "torn-3"]) await offline.record(sampleEvent(id, source));
    await offline.close();
    const [segment] = fs.readdirSync(spoolDir).filter((name) => name.startsWith("segment-"));
    const torn = `{"seq":4,"spooled_at":1,"event":${JSON.stringify(sampleEvent("torn-4", source))}}`.slice(0, 80);
    fs.appendFileSync(path.join(spoolDir, segment!), torn);

    const online = new Client({ url: serve.base, apiKey: producer, spoolDir });
    assert.equal(online.metrics().depth, 3);
    await online.record(sampleEvent("torn-5", source));
    assert.equal(await online.flush(10_000), true);
    await online.close();
    assert.deepEqual(await idsInLog(source), ["torn-1", "torn-2", "torn-3", "torn-5"]);
    assert.deepEqual(
      fs.readdirSync(spoolDir).filter((name) => name.startsWith("segment-")),
      [],
      "resolved segments are deleted",
    );
  });

  it("sends everything again when its cursor is damaged, and the log still holds each event once", async () => {
    const spoolDir = tempDir("spool");
    const source = "//sdk-test/cursor";
    const first = new Client({ url: serve.base, apiKey: producer, spoolDir, segmentBytes: 1 });
    // segmentBytes 1: every group gets its own segment, so acknowledged ones are deleted one by one.
    for (const id of ["cursor-1", "cursor-2"]) await first.record(sampleEvent(id, source));
    assert.equal(await first.flush(10_000), true);
    await first.close();
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const offline = new Client({ url: nowhere, apiKey: producer, spoolDir });
    await offline.record(sampleEvent("cursor-3", source));
    await offline.close();
    // A delivered segment kept back (as a crash between the cursor write and the deletion leaves it).
    fs.writeFileSync(
      path.join(spoolDir, "segment-0000000000000001.ndjson"),
      `{"seq":1,"spooled_at":1,"event":${JSON.stringify(sampleEvent("cursor-1", source))}}\n`,
    );
    fs.writeFileSync(path.join(spoolDir, "cursor.json"), '{"acknowledged":');

    const errors: Error[] = [];
    const again = new Client({ url: serve.base, apiKey: producer, spoolDir, onError: (err) => errors.push(err) });
    assert.match(again.metrics().lastError ?? "", /cursor.json is not a spool cursor/);
    assert.match(errors[0]?.message ?? "", /sending everything still spooled again/);
    assert.equal(again.metrics().depth, 2, "cursor-1 (kept back) and cursor-3");
    assert.equal(await again.flush(10_000), true);
    await again.close();
    assert.deepEqual(await idsInLog(source), ["cursor-1", "cursor-2", "cursor-3"]);
  });
});

describe("bad input", () => {
  it("refuses bad options, naming the option", () => {
    const spoolDir = tempDir("spool");
    const cases: [string, Record<string, unknown>][] = [
      ["url", { url: "not a url", apiKey: "k" }],
      ["url", { url: "ftp://example.com", apiKey: "k" }],
      ["url", { apiKey: "k" }],
      ["apiKey", { url: "http://127.0.0.1:1" }],
      ["apiKey", { url: "http://127.0.0.1:1", apiKey: "two words" }],
      ["spoolDir", { url: "http://127.0.0.1:1", apiKey: "k", spoolDir: "" }],
      ["maxSpoolBytes", { url: "http://127.0.0.1:1", apiKey: "k", maxSpoolBytes: 0 }],
      ["maxBatchEvents", { url: "http://127.0.0.1:1", apiKey: "k", maxBatchEvents: 1.5 }],
      ["vkeys[0]", { url: "http://127.0.0.1:1", apiKey: "k", vkeys: ["nope"] }],
    ];
    for (const [field, options] of cases) {
      assert.throws(
        () => new Client({ spoolDir, ...options } as never),
        (err: InvalidInputError) => err instanceof InvalidInputError && err.field === field,
        `${field}: ${JSON.stringify(options)}`,
      );
    }
    assert.deepEqual(fs.readdirSync(spoolDir), [], "a refused Client takes no lock");
  });

  it("refuses events that can never be sent, naming the field", async () => {
    const client = new Client({
      url: `http://127.0.0.1:${await freePort()}`,
      apiKey: producer,
      spoolDir: tempDir("spool"),
    });
    const base = sampleEvent("bad", "//sdk-test/bad");
    const cases: [string, unknown][] = [
      ["event", null],
      ["event", [base]],
      ["event", "text"],
      ["id", { ...base, id: "" }],
      ["id", { ...base, id: "x".repeat(129) }],
      ["id", { ...base, id: 7 }],
      ["time", { ...base, time: new Date(Number.NaN) }],
      ["time", { ...base, time: 1700000000 }],
      ["source", { ...base, source: undefined }],
      ["event", { ...base, metadata: { n: 1n } }],
      ["event", { ...base, reason: "x".repeat(300_000) }],
    ];
    for (const [field, event] of cases) {
      await assert.rejects(
        client.record(event as never),
        (err: InvalidInputError) => err instanceof InvalidInputError && err.field === field,
        field,
      );
    }
    await assert.rejects(client.flush(-1), InvalidInputError);
    assert.equal(client.metrics().depth, 0, "nothing refused was spooled");
    await client.close();
  });
});
