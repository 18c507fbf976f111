/**
 * `Client`: what an application records audit events with. `record` resolves once the event is
 * durable in the local file spool ({@link FileSpool}); a background {@link Sender} delivers it;
 * `flush` waits for delivery; `metrics` reports the spool's depth and oldest age.
 */

import { randomUUID } from "node:crypto";
import * as path from "node:path";

import { ClosedError, InvalidInputError, SpoolFullError } from "./errors.js";
import { Verifier } from "./note.js";
import { Sender } from "./sender.js";
import { FileSpool } from "./spool.js";
import type { AuditEvent, EventInput, ItemResult } from "./types.js";

/** The server refuses events larger than this (bytes of JSON). */
export const MAX_EVENT_BYTES = 256 * 1024;

export interface ClientOptions {
  /** The service, e.g. `http://127.0.0.1:7411`. */
  url: string;
  /** A producer key (`POST /v1/keys` with role `producer`). */
  apiKey: string;
  /** The spool directory, one per Client (default `./.evident-spool`). Keep it on a durable disk. */
  spoolDir?: string;
  /** The `source` of events that do not name one, e.g. `//crm.example.com/support-api`. */
  source?: string;
  /** At most this many bytes of unacknowledged events; beyond, `record` refuses (default 64 MiB). */
  maxSpoolBytes?: number;
  /** A spool segment file is closed past this size (default 8 MiB). */
  segmentBytes?: number;
  /** Events per request (default 500; the server takes up to 10000). */
  maxBatchEvents?: number;
  /** Bytes per request (default 4 MiB; the server takes up to 16 MiB). */
  maxBatchBytes?: number;
  /** One request's time limit (default 30 s). */
  requestTimeoutMs?: number;
  /** First retry delay without `Retry-After` (default 200 ms), doubled per failure. */
  initialBackoffMs?: number;
  /** Longest retry delay without `Retry-After` (default 30 s). */
  maxBackoffMs?: number;
  /** The log's verifier keys: when given, each receipt's checkpoint signature is checked on arrival. */
  vkeys?: string[];
  /** Called with each receipt (`stored` or `duplicate`) and its event. */
  onReceipt?: (result: ItemResult, event: AuditEvent) => void;
  /** Called on each failed delivery attempt and each receipt that does not verify. */
  onError?: (error: Error) => void;
}

/** What `Client.metrics()` reports. */
export interface ClientMetrics {
  /** Events spooled and not yet acknowledged. */
  depth: number;
  depthBytes: number;
  maxSpoolBytes: number;
  /** Age of the oldest unacknowledged event (0 when none). */
  oldestAgeMs: number;
  /** Events the server stored (or had stored: `duplicate`). */
  acknowledged: number;
  /** Events moved to `dead-letter.ndjson` (`rejected`, `conflict`, too large). */
  deadLettered: number;
  /** `record` calls refused because the spool was full. */
  spoolFull: number;
  batchesSent: number;
  retries: number;
  /** Receipts whose checkpoint did not verify against `vkeys`. */
  receiptsUnverified: number;
  lastError?: string;
  lastErrorAt?: number;
}

function positive(options: ClientOptions, name: keyof ClientOptions, fallback: number): number {
  const value = options[name] ?? fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidInputError(name, `must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkOptions(options: ClientOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new InvalidInputError("options", "pass {url, apiKey, spoolDir}");
  }
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new InvalidInputError("url", `${JSON.stringify(options.url)} is not a URL; e.g. http://127.0.0.1:7411`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidInputError("url", `use http or https, not ${url.protocol}`);
  }
  if (typeof options.apiKey !== "string" || options.apiKey.length === 0 || /\s/.test(options.apiKey)) {
    throw new InvalidInputError("apiKey", "must be a producer key (POST /v1/keys with role producer)");
  }
  if (options.spoolDir !== undefined && (typeof options.spoolDir !== "string" || options.spoolDir === "")) {
    throw new InvalidInputError("spoolDir", "must be a directory path");
  }
}

export class Client {
  private readonly spool: FileSpool;
  private readonly sender: Sender;
  private readonly source: string | undefined;
  private readonly maxSpoolBytes: number;
  private spoolFull = 0;
  private closing: Promise<void> | undefined;
  private readonly ackWaiters = new Set<() => void>();

  /**
   * Opens the spool (taking its lock) and starts delivering what it holds. Throws
   * {@link InvalidInputError} for a bad option and {@link SpoolLockedError} when another live
   * Client holds `spoolDir`.
   */
  constructor(options: ClientOptions) {
    checkOptions(options);
    this.maxSpoolBytes = positive(options, "maxSpoolBytes", 64 << 20);
    const vkeys = (options.vkeys ?? []).map((vkey, at) => {
      try {
        return Verifier.parse(vkey.trim());
      } catch (err) {
        throw new InvalidInputError(`vkeys[${at}]`, (err as Error).message);
      }
    });
    this.source = options.source;
    const segmentBytes = positive(options, "segmentBytes", 8 << 20);
    const sending = {
      url: options.url,
      apiKey: options.apiKey,
      maxBatchEvents: positive(options, "maxBatchEvents", 500),
      maxBatchBytes: positive(options, "maxBatchBytes", 4 << 20),
      requestTimeoutMs: positive(options, "requestTimeoutMs", 30_000),
      initialBackoffMs: positive(options, "initialBackoffMs", 200),
      maxBackoffMs: positive(options, "maxBackoffMs", 30_000),
      vkeys,
      ...(options.onReceipt && { onReceipt: options.onReceipt }),
      ...(options.onError && { onError: options.onError }),
    };
    // Every option is checked before the spool's lock is taken.
    this.spool = FileSpool.open(path.resolve(options.spoolDir ?? ".evident-spool"), {
      maxBytes: this.maxSpoolBytes,
      segmentBytes,
    });
    this.sender = new Sender(this.spool, sending);
    this.spool.onDurable = () => this.sender.wake();
    this.sender.onAcknowledged = () => {
      for (const wake of this.ackWaiters) wake();
    };
    this.sender.start();
    if (this.spool.damage !== undefined) this.sender.reportDamage(this.spool.damage);
  }

  /**
   * Records one event: resolves with its `id` once it is durable in the spool (delivery follows in
   * the background, with the same id on every try). Fills in `id` (a random UUID), `time` (now)
   * and `source` (the Client's) when missing. Rejects with {@link InvalidInputError} for an event
   * that can never be sent, and {@link SpoolFullError} when the spool is full: then nothing was
   * recorded and the caller still owns the event.
   */
  async record(event: EventInput): Promise<string> {
    if (this.closing !== undefined) throw new ClosedError();
    const body = this.prepare(event);
    try {
      await this.spool.add(body.json);
    } catch (err) {
      if (err instanceof SpoolFullError) this.spoolFull++;
      throw err;
    }
    return body.id;
  }

  private prepare(event: EventInput): { id: string; json: string } {
    if (typeof event !== "object" || event === null || Array.isArray(event)) {
      throw new InvalidInputError("event", "must be an object (one audit event)");
    }
    const id = event.id ?? randomUUID();
    if (typeof id !== "string" || id.length === 0 || id.length > 128) {
      throw new InvalidInputError("id", "must be a string of 1 to 128 characters (or left out)");
    }
    const time = event.time ?? new Date();
    if (!(time instanceof Date ? !Number.isNaN(time.getTime()) : typeof time === "string")) {
      throw new InvalidInputError("time", "must be an RFC 3339 string or a valid Date (or left out)");
    }
    const source = event.source ?? this.source;
    if (typeof source !== "string" || source.length === 0) {
      throw new InvalidInputError("source", "set it on the event or as the Client option `source`");
    }
    let json: string;
    try {
      json = JSON.stringify({ ...event, id, source, time: time instanceof Date ? time.toISOString() : time });
    } catch (err) {
      throw new InvalidInputError("event", `cannot be written as JSON: ${(err as Error).message}`);
    }
    const bytes = Buffer.byteLength(json);
    if (bytes > MAX_EVENT_BYTES) {
      throw new InvalidInputError("event", `${bytes} bytes of JSON; the server takes at most ${MAX_EVENT_BYTES}`);
    }
    return { id, json };
  }

  /**
   * Waits until every event recorded before this call is acknowledged (or dead-lettered): true
   * when it is, false when `timeoutMs` passed first. Delivery goes on either way.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
      throw new InvalidInputError("timeoutMs", "must be a number of milliseconds >= 0");
    }
    const deadline = Date.now() + timeoutMs;
    const settled = await this.until(
      this.spool.settled().then(() => true),
      deadline,
    );
    if (!settled) return false;
    const target = this.spool.lastDurableSeq;
    while (this.spool.acknowledged < target) {
      if (this.closing !== undefined || Date.now() >= deadline) return false;
      const acknowledged = new Promise<boolean>((resolve) => {
        const wake = () => {
          this.ackWaiters.delete(wake);
          resolve(true);
        };
        this.ackWaiters.add(wake);
      });
      await this.until(acknowledged, deadline);
    }
    return true;
  }

  /** `promise`'s value, or false at `deadline`. */
  private until(promise: Promise<boolean>, deadline: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  /** The spool's depth and oldest age, and the sender's counters. */
  metrics(): ClientMetrics {
    const metrics: ClientMetrics = {
      depth: this.spool.depth,
      depthBytes: this.spool.depthBytes,
      maxSpoolBytes: this.maxSpoolBytes,
      oldestAgeMs: this.spool.oldestAgeMs(),
      spoolFull: this.spoolFull,
      ...this.sender.stats,
    };
    return metrics;
  }

  /** The same metrics in the Prometheus text format, for an application's `/metrics`. */
  metricsText(): string {
    const m = this.metrics();
    const lines: [string, string, string, number][] = [
      ["evident_spool_depth_events", "gauge", "Events spooled and not yet acknowledged", m.depth],
      ["evident_spool_depth_bytes", "gauge", "Bytes of unacknowledged events", m.depthBytes],
      ["evident_spool_max_bytes", "gauge", "The spool's bound", m.maxSpoolBytes],
      ["evident_spool_oldest_age_seconds", "gauge", "Age of the oldest unacknowledged event", m.oldestAgeMs / 1000],
      ["evident_client_acknowledged_total", "counter", "Events the server acknowledged", m.acknowledged],
      ["evident_client_dead_lettered_total", "counter", "Events moved to the dead-letter file", m.deadLettered],
      ["evident_client_spool_full_total", "counter", "record calls refused by a full spool", m.spoolFull],
      ["evident_client_batches_sent_total", "counter", "Requests answered by the server", m.batchesSent],
      ["evident_client_retries_total", "counter", "Delivery attempts retried", m.retries],
      ["evident_client_receipts_unverified_total", "counter", "Receipts that did not verify", m.receiptsUnverified],
    ];
    return lines
      .map(([name, type, help, value]) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}\n`)
      .join("");
  }

  /**
   * Stops recording and delivering, closes the spool and releases its lock. What is not delivered
   * stays spooled and is sent by the next Client on the same `spoolDir`; call `flush` first to
   * deliver before exiting. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.spool.settled();
      await this.sender.stop();
      await this.spool.close();
      for (const wake of this.ackWaiters) wake();
    })();
    return this.closing;
  }
}
