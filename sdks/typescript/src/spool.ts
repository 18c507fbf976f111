/**
 * The file spool: where a recorded event lives from `record` until the server acknowledges it.
 *
 * Layout of the spool directory (one Client at a time, guarded by `lock`):
 * - `segment-<first seq>.ndjson`: append-only, one line per event,
 *   `{"seq":N,"spooled_at":MS,"event":{...}}`, written in groups, each group made durable with one
 *   `fdatasync` before any `record` of the group resolves. A new segment is started at every open
 *   and when the current one passes `segmentBytes`, so a torn tail is never appended to.
 * - `cursor.json`: `{"acknowledged":N}`, every event with `seq <= N` is resolved (acknowledged by
 *   the server or dead-lettered); replaced atomically (temp file, fsync, rename, fsync of the dir).
 * - `dead-letter.ndjson`: events the server refused for good (`rejected`, `conflict`, too large),
 *   each with the reason; appended and synced before the cursor moves past them.
 *
 * Crashes: a kill during a group write leaves at most a torn last line, which reading stops at
 * (a strict prefix of a JSON object never parses); those events' `record` never resolved. A kill
 * after the server stored a batch but before the cursor moved makes the batch be sent again with
 * the same ids: the server answers `duplicate`, so the log holds each event once.
 *
 * Bound: `maxBytes` counts the bytes of unacknowledged events; an event that does not fit is
 * refused with {@link SpoolFullError} and nothing of it is written (the full-spool policy).
 */

import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";

import { SpoolFullError, SpoolLockedError } from "./errors.js";

/** One spooled event, as the sender sends it. */
export interface SpooledEvent {
  seq: number;
  /** When it was spooled (ms since the epoch). */
  spooledAt: number;
  /** The event's JSON text, byte for byte what is sent on every try. */
  body: string;
  /** Bytes its line takes in the segment. */
  bytes: number;
}

/** An event the server refused for good, and why. */
export interface DeadLetter {
  event: SpooledEvent;
  status: string;
  errors: unknown;
}

interface Segment {
  file: string;
  lastSeq: number;
}

export interface SpoolOptions {
  maxBytes: number;
  segmentBytes: number;
}

const SEGMENT_PATTERN = /^segment-(\d{16})\.ndjson$/;
const LINE_PATTERN = /^\{"seq":(\d+),"spooled_at":(\d+),"event":(.*)\}$/;
const CURSOR_FILE = "cursor.json";
const LOCK_FILE = "lock";
export const DEAD_LETTER_FILE = "dead-letter.ndjson";
/** Bytes of a segment line besides the event (`{"seq":..,"spooled_at":..,"event":}` and the newline). */
const LINE_OVERHEAD = 64;

/** Spool directories held by a Client of this process (a lock file with our pid and not in here is stale). */
const heldHere = new Set<string>();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Takes the directory's lock file, or throws {@link SpoolLockedError} if a live holder has it. */
function takeLock(dir: string): void {
  const lock = path.join(dir, LOCK_FILE);
  if (heldHere.has(dir)) throw new SpoolLockedError(dir, process.pid);
  try {
    fs.writeFileSync(lock, `${process.pid}\n`, { flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const holder = Number.parseInt(fs.readFileSync(lock, "utf8"), 10);
    if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
      throw new SpoolLockedError(dir, holder);
    }
    // The holder is gone (killed, or a previous process with our pid): take the lock over.
    fs.writeFileSync(lock, `${process.pid}\n`);
  }
  heldHere.add(dir);
}

/** What an event counts against `maxBytes`: its JSON text and the line's framing. */
function cost(body: string): number {
  return Buffer.byteLength(body) + LINE_OVERHEAD;
}

function segmentName(firstSeq: number): string {
  return `segment-${String(firstSeq).padStart(16, "0")}.ndjson`;
}

/** The events of one segment file, up to its first line that is torn or not ours. */
function readSegment(file: string): SpooledEvent[] {
  const text = fs.readFileSync(file, "utf8");
  const lines = text.split("\n");
  lines.pop(); // after the last newline: empty, or a torn line whose record never resolved
  const events: SpooledEvent[] = [];
  for (const line of lines) {
    const match = LINE_PATTERN.exec(line);
    if (match === null) break;
    try {
      JSON.parse(line);
    } catch {
      break;
    }
    const seq = Number(match[1]);
    events.push({ seq, spooledAt: Number(match[2]), body: match[3]!, bytes: cost(match[3]!) });
  }
  return events;
}

/**
 * The acknowledged seq in `cursor.json` (0 when there is none). A cursor that cannot be read
 * (it is only ever replaced atomically, so this means outside damage) counts as 0: everything
 * still spooled is sent again and the server answers `duplicate` for what it has, so nothing is
 * lost or doubled. `damage` says why, for the Client to report.
 */
function readCursor(dir: string): { acknowledged: number; damage?: string } {
  const file = path.join(dir, CURSOR_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { acknowledged: 0 };
    throw err;
  }
  let acknowledged: unknown;
  try {
    acknowledged = (JSON.parse(text) as { acknowledged?: unknown }).acknowledged;
  } catch {
    acknowledged = undefined;
  }
  if (typeof acknowledged !== "number" || !Number.isSafeInteger(acknowledged) || acknowledged < 0) {
    const damage = `${file} is not a spool cursor (${JSON.stringify(text.slice(0, 80))}); sending everything still spooled again`;
    return { acknowledged: 0, damage };
  }
  return { acknowledged };
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class FileSpool {
  /** Unacknowledged durable events, in seq order. */
  private readonly pending: SpooledEvent[] = [];
  private pendingBytes = 0;
  /** Events waiting for the next group write, with their callers. */
  private batch: { body: string; spooledAt: number; resolve: (seq: number) => void; reject: (e: unknown) => void }[] =
    [];
  private batchBytes = 0;
  private writeScheduled = false;
  private segments: Segment[] = [];
  private current: { handle: fsp.FileHandle; segment: Segment; bytes: number } | undefined;
  private deadLetter: fsp.FileHandle | undefined;
  /** File work runs one step at a time: group writes, acknowledgements, closing. */
  private chain: Promise<unknown> = Promise.resolve();
  private nextSeq: number;
  private acknowledgedSeq: number;
  /** The highest seq made durable so far. */
  private durableSeq: number;
  private closed = false;
  /** Why the spool's cursor could not be read at open, if it could not. */
  damage: string | undefined;
  /** Called when new events became durable (the sender wakes up). */
  onDurable: () => void = () => {};

  private constructor(
    readonly dir: string,
    private readonly options: SpoolOptions,
    acknowledged: number,
  ) {
    this.acknowledgedSeq = acknowledged;
    this.nextSeq = acknowledged + 1;
    this.durableSeq = acknowledged;
  }

  /** Opens (creating) a spool directory and loads what is unacknowledged. Synchronous: runs once. */
  static open(dir: string, options: SpoolOptions): FileSpool {
    fs.mkdirSync(dir, { recursive: true });
    const real = fs.realpathSync(dir);
    takeLock(real);
    try {
      const cursor = readCursor(real);
      const spool = new FileSpool(real, options, cursor.acknowledged);
      if (cursor.damage !== undefined) spool.damage = cursor.damage;
      spool.load();
      return spool;
    } catch (err) {
      heldHere.delete(real);
      throw err;
    }
  }

  private load(): void {
    const files = fs
      .readdirSync(this.dir)
      .filter((name) => SEGMENT_PATTERN.test(name))
      .sort();
    for (const name of files) {
      const file = path.join(this.dir, name);
      const events = readSegment(file);
      const lastSeq = events.length > 0 ? events[events.length - 1]!.seq : this.acknowledgedSeq;
      this.nextSeq = Math.max(this.nextSeq, lastSeq + 1);
      if (lastSeq <= this.acknowledgedSeq) {
        fs.rmSync(file, { force: true });
        continue;
      }
      this.segments.push({ file, lastSeq });
      for (const event of events.filter((e) => e.seq > this.acknowledgedSeq)) {
        this.pending.push(event);
        this.pendingBytes += event.bytes;
      }
    }
    this.durableSeq = this.nextSeq - 1;
  }

  private serial<T>(step: () => Promise<T>): Promise<T> {
    const run = this.chain.then(step, step);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Spools one event's JSON text; resolves with its seq once it is durable. Throws
   * {@link SpoolFullError} at once when it does not fit (nothing written).
   */
  add(body: string): Promise<number> {
    if (this.closed) return Promise.reject(new Error("the spool is closed"));
    const spooledAt = Date.now();
    const bytes = cost(body);
    const used = this.pendingBytes + this.batchBytes;
    if (used + bytes > this.options.maxBytes) {
      return Promise.reject(new SpoolFullError(used, this.options.maxBytes, bytes));
    }
    this.batchBytes += bytes;
    const done = new Promise<number>((resolve, reject) => this.batch.push({ body, spooledAt, resolve, reject }));
    if (!this.writeScheduled) {
      this.writeScheduled = true;
      void this.serial(() => this.writeGroup());
    }
    return done;
  }

  /** Writes every event waiting now as one group, one `fdatasync`, then resolves their callers. */
  private async writeGroup(): Promise<void> {
    this.writeScheduled = false;
    const group = this.batch;
    this.batch = [];
    this.batchBytes -= group.reduce((sum, item) => sum + cost(item.body), 0);
    if (group.length === 0) return;
    const written: SpooledEvent[] = group.map((item) => ({
      seq: this.nextSeq++,
      spooledAt: item.spooledAt,
      body: item.body,
      bytes: cost(item.body),
    }));
    const text = written
      .map((event) => `{"seq":${event.seq},"spooled_at":${event.spooledAt},"event":${event.body}}\n`)
      .join("");
    try {
      const current = await this.currentSegment(written[0]!.seq);
      await current.handle.write(text);
      await current.handle.datasync();
      current.bytes += Buffer.byteLength(text);
      current.segment.lastSeq = written[written.length - 1]!.seq;
    } catch (err) {
      // The segment may end in a torn group now: never append to it again.
      await this.closeCurrent();
      for (const item of group) item.reject(err);
      return;
    }
    for (const event of written) {
      this.pending.push(event);
      this.pendingBytes += event.bytes;
    }
    this.durableSeq = written[written.length - 1]!.seq;
    group.forEach((item, at) => item.resolve(written[at]!.seq));
    this.onDurable();
  }

  /** The segment to append to: a new file (its directory entry synced) when none is open or it is full. */
  private async currentSegment(firstSeq: number): Promise<{ handle: fsp.FileHandle; segment: Segment; bytes: number }> {
    if (this.current !== undefined && this.current.bytes >= this.options.segmentBytes) {
      await this.closeCurrent();
    }
    if (this.current === undefined) {
      const file = path.join(this.dir, segmentName(firstSeq));
      const handle = await fsp.open(file, "a");
      await syncDir(this.dir);
      const segment = { file, lastSeq: firstSeq - 1 };
      this.segments.push(segment);
      this.current = { handle, segment, bytes: 0 };
    }
    return this.current;
  }

  private async closeCurrent(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    await current?.handle.close().catch(() => undefined);
  }

  /** Up to `maxEvents` of the oldest unacknowledged events, at most `maxBytes` of them (at least one). */
  peek(maxEvents: number, maxBytes: number): SpooledEvent[] {
    const out: SpooledEvent[] = [];
    let bytes = 0;
    for (const event of this.pending) {
      if (out.length >= maxEvents || (out.length > 0 && bytes + event.bytes > maxBytes)) break;
      out.push(event);
      bytes += event.bytes;
    }
    return out;
  }

  /**
   * Resolves every event up to `upTo` (the last seq of the batch just answered): dead letters are
   * appended and synced first, then the cursor moves, then the events leave memory and fully
   * resolved segments are deleted.
   */
  acknowledge(upTo: number, deadLetters: DeadLetter[]): Promise<void> {
    return this.serial(async () => {
      if (deadLetters.length > 0) await this.appendDeadLetters(deadLetters);
      const tmp = path.join(this.dir, `${CURSOR_FILE}.tmp`);
      const handle = await fsp.open(tmp, "w");
      try {
        await handle.write(`{"acknowledged":${upTo}}\n`);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await fsp.rename(tmp, path.join(this.dir, CURSOR_FILE));
      await syncDir(this.dir);
      this.acknowledgedSeq = upTo;
      let resolved = 0;
      while (resolved < this.pending.length && this.pending[resolved]!.seq <= upTo) {
        this.pendingBytes -= this.pending[resolved]!.bytes;
        resolved++;
      }
      this.pending.splice(0, resolved);
      await this.dropResolvedSegments();
    });
  }

  private async appendDeadLetters(deadLetters: DeadLetter[]): Promise<void> {
    this.deadLetter ??= await fsp.open(path.join(this.dir, DEAD_LETTER_FILE), "a");
    const at = new Date().toISOString();
    const text = deadLetters
      .map(
        (letter) =>
          `{"dead_lettered_at":${JSON.stringify(at)},"status":${JSON.stringify(letter.status)},` +
          `"errors":${JSON.stringify(letter.errors ?? null)},"event":${letter.event.body}}\n`,
      )
      .join("");
    await this.deadLetter.write(text);
    await this.deadLetter.datasync();
  }

  private async dropResolvedSegments(): Promise<void> {
    const keep: Segment[] = [];
    for (const segment of this.segments) {
      const isCurrent = this.current?.segment === segment;
      const resolved = segment.lastSeq <= this.acknowledgedSeq;
      // The current segment goes too once it is resolved and nothing waits to be written into it.
      if (resolved && (!isCurrent || (this.batch.length === 0 && !this.writeScheduled))) {
        if (isCurrent) await this.closeCurrent();
        await fsp.rm(segment.file, { force: true });
      } else {
        keep.push(segment);
      }
    }
    this.segments = keep;
  }

  /** Unacknowledged durable events. */
  get depth(): number {
    return this.pending.length;
  }

  get depthBytes(): number {
    return this.pendingBytes;
  }

  /** Age of the oldest unacknowledged event in ms (0 when none). */
  oldestAgeMs(now = Date.now()): number {
    const oldest = this.pending[0];
    return oldest === undefined ? 0 : Math.max(0, now - oldest.spooledAt);
  }

  /** The highest seq whose `add` resolved. */
  get lastDurableSeq(): number {
    return this.durableSeq;
  }

  get acknowledged(): number {
    return this.acknowledgedSeq;
  }

  /** Waits until every `add` made so far has been written (or failed). */
  settled(): Promise<void> {
    return this.serial(async () => undefined);
  }

  /** Writes what waits, closes the files and releases the lock. Idempotent. */
  close(): Promise<void> {
    return this.serial(async () => {
      if (this.closed) return;
      this.closed = true;
      await this.closeCurrent();
      await this.deadLetter?.close().catch(() => undefined);
      this.deadLetter = undefined;
      await fsp.rm(path.join(this.dir, LOCK_FILE), { force: true });
      heldHere.delete(this.dir);
    });
  }
}
