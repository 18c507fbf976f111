/**
 * The background sender: posts the spool's oldest events in batches to `POST /v1/events` (a JSON
 * array, so every item gets its own result), the same bytes and ids on every try, and resolves
 * only what the server answered for.
 *
 * Per item: `stored` and `duplicate` acknowledge; `rejected` and `conflict` go to the dead-letter
 * file with the reason. Per request: 5xx, 408, 429 and connection errors are retried after
 * `Retry-After` when the server sends one, else after an exponential backoff with jitter; 413, 400
 * and 422 split the batch in halves down to one event, which is then dead-lettered with the
 * problem; any other answer (a bad key: 401, 403) is retried with backoff and reported, never
 * dropped: fixing the key delivers everything.
 */

import type { ClientOptions } from "./client.js";
import { VerificationError } from "./errors.js";
import { openCheckpoint, type Verifier } from "./note.js";
import type { FileSpool, DeadLetter, SpooledEvent } from "./spool.js";
import type { AuditEvent, IngestResponse, ItemResult, Problem } from "./types.js";

/** The Client's delivery options, defaults applied, with the vkeys parsed. */
export type SenderOptions = Required<
  Pick<
    ClientOptions,
    "url" | "apiKey" | "maxBatchEvents" | "maxBatchBytes" | "requestTimeoutMs" | "initialBackoffMs" | "maxBackoffMs"
  >
> &
  Pick<ClientOptions, "onReceipt" | "onError"> & {
    /** Check each receipt's checkpoint signature on arrival against these keys. */
    vkeys?: Verifier[];
  };

/** Counters of the sender, as `Client.metrics()` reports them. */
export interface SenderStats {
  batchesSent: number;
  acknowledged: number;
  deadLettered: number;
  retries: number;
  receiptsUnverified: number;
  lastError?: string;
  lastErrorAt?: number;
}

type Attempt =
  | { kind: "answered"; results: ItemResult[] }
  | { kind: "split"; problem: string }
  | { kind: "retry"; error: Error; retryAfterMs?: number };

const USER_AGENT = "evident-js/0.1.0";
const MAX_RETRY_AFTER_MS = 10 * 60 * 1000;

/** `Retry-After` in ms: delta-seconds or an HTTP date (RFC 9110 §10.2.3); undefined if absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

async function problemText(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  try {
    const problem = JSON.parse(text) as Problem;
    const params = (problem["invalid-params"] ?? []).map((p) => `${p.name}: ${p.reason}`).join("; ");
    return [problem.title, problem.detail, params].filter(Boolean).join(": ");
  } catch {
    return text.slice(0, 200);
  }
}

export class Sender {
  readonly stats: SenderStats = { batchesSent: 0, acknowledged: 0, deadLettered: 0, retries: 0, receiptsUnverified: 0 };
  private readonly endpoint: string;
  private stopping = false;
  private wakeUp: (() => void) | undefined;
  private cancelPause: (() => void) | undefined;
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private failures = 0;
  private limit: number;
  /** Called after every acknowledgement (flush waits on it). */
  onAcknowledged: () => void = () => {};

  constructor(
    private readonly spool: FileSpool,
    private readonly options: SenderOptions,
  ) {
    this.endpoint = new URL("v1/events", options.url.endsWith("/") ? options.url : `${options.url}/`).href;
    this.limit = options.maxBatchEvents;
  }

  start(): void {
    this.running ??= this.run();
  }

  /** New events are durable: send them now (unless waiting out a backoff). */
  wake(): void {
    this.wakeUp?.();
  }

  /** Stops after the current attempt is aborted; events stay in the spool. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    this.wake();
    this.cancelPause?.();
    await this.running;
  }

  /** Sleeps `ms` (a timer that does not keep the process alive); only `stop` cuts it short. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopping) return resolve();
      const timer = setTimeout(() => {
        this.cancelPause = undefined;
        resolve();
      }, ms);
      timer.unref();
      this.cancelPause = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private waitForWork(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeUp = resolve;
      if (this.stopping || this.spool.depth > 0) resolve();
    });
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const batch = this.spool.peek(this.limit, this.options.maxBatchBytes);
      if (batch.length === 0) {
        await this.waitForWork();
        continue;
      }
      try {
        await this.deliver(batch);
      } catch (err) {
        // Unexpected (a bug, a disk error): the batch stays spooled and is tried again.
        await this.retryLater(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  /** One try at a batch, and what its answer means. */
  private async deliver(batch: SpooledEvent[]): Promise<void> {
    const attempt = await this.post(batch);
    if (attempt.kind === "answered") {
      // Even when stopping: what the server answered for need not be sent again.
      await this.resolve(batch, attempt.results);
    } else if (this.stopping) {
      return;
    } else if (attempt.kind === "split") {
      if (batch.length > 1) {
        this.limit = Math.ceil(batch.length / 2);
      } else {
        const errors = [{ name: "", rule: "request", reason: attempt.problem }];
        await this.resolve(batch, [{ status: "rejected", errors }]);
      }
    } else {
      await this.retryLater(attempt.error, attempt.retryAfterMs);
    }
  }

  private async retryLater(error: Error, retryAfterMs?: number): Promise<void> {
    this.stats.retries++;
    this.report(error);
    const ceiling = Math.min(
      this.options.maxBackoffMs,
      this.options.initialBackoffMs * 2 ** Math.min(this.failures, 30),
    );
    this.failures++;
    const delay = retryAfterMs ?? ceiling * (0.5 + Math.random() * 0.5);
    await this.pause(delay);
  }

  /** Reports damage found in the spool when it was opened. */
  reportDamage(damage: string): void {
    this.report(new Error(damage));
  }

  private report(error: Error): void {
    this.stats.lastError = error.message;
    this.stats.lastErrorAt = Date.now();
    try {
      this.options.onError?.(error);
    } catch {
      // a throwing callback must not stop delivery
    }
  }

  private async post(batch: SpooledEvent[]): Promise<Attempt> {
    const body = `[${batch.map((event) => event.body).join(",")}]`;
    let response: Response;
    try {
      response = await fetch(this.endpoint, {
        method: "POST",
        headers: {
          authorization: `Bearer ${this.options.apiKey}`,
          "content-type": "application/json",
          "user-agent": USER_AGENT,
        },
        body,
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.requestTimeoutMs)]),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      return { kind: "retry", error: new Error(`POST ${this.endpoint}: ${cause ?? (err as Error).message}`) };
    }
    this.stats.batchesSent++;
    const status = response.status;
    if (status === 200 || status === 207) {
      const answer = (await response.json().catch(() => undefined)) as IngestResponse | undefined;
      const results = answer?.receipts;
      if (!Array.isArray(results) || results.length !== batch.length) {
        return { kind: "retry", error: new Error(`POST ${this.endpoint}: ${status} without one result per event`) };
      }
      return { kind: "answered", results };
    }
    const detail = await problemText(response);
    if (status === 400 || status === 413 || status === 422) {
      return { kind: "split", problem: `${status} ${detail}` };
    }
    const error = new Error(`POST ${this.endpoint}: ${status} ${detail}`);
    const retryable = status === 408 || status === 429 || status >= 500;
    const retryAfterMs = retryable ? parseRetryAfter(response.headers.get("retry-after")) : undefined;
    return retryAfterMs === undefined ? { kind: "retry", error } : { kind: "retry", error, retryAfterMs };
  }

  /** Acknowledges a batch the server answered item by item. */
  private async resolve(batch: SpooledEvent[], results: ItemResult[]): Promise<void> {
    const deadLetters: DeadLetter[] = [];
    results.forEach((result, at) => {
      const event = batch[at]!;
      if (result.status === "stored" || result.status === "duplicate") {
        this.checkReceipt(result);
        if (this.options.onReceipt !== undefined) {
          try {
            this.options.onReceipt(result, JSON.parse(event.body) as AuditEvent);
          } catch {
            // a throwing callback must not stop delivery
          }
        }
      } else {
        deadLetters.push({ event, status: result.status, errors: result.errors ?? [] });
      }
    });
    try {
      await this.spool.acknowledge(batch[batch.length - 1]!.seq, deadLetters);
    } catch (err) {
      // Not moved: the batch is sent again and answered `duplicate`.
      await this.retryLater(new Error(`cannot move the spool cursor: ${(err as Error).message}`));
      return;
    }
    this.failures = 0;
    this.limit = Math.min(this.options.maxBatchEvents, this.limit * 2);
    this.stats.acknowledged += batch.length - deadLetters.length;
    this.stats.deadLettered += deadLetters.length;
    this.onAcknowledged();
  }

  /** With `vkeys`: the receipt's checkpoint must be signed by the log's key and cover the event. */
  private checkReceipt(result: ItemResult): void {
    const vkeys = this.options.vkeys;
    if (vkeys === undefined || vkeys.length === 0) return;
    try {
      const note = result.checkpoint ?? "";
      const checkpoint = openCheckpoint(note, vkeys, note.split("\n", 1)[0]!);
      if (result.index === undefined || BigInt(result.index) >= checkpoint.size) {
        throw new VerificationError("invalid_position", `index ${result.index} is not below the checkpoint's size`);
      }
    } catch (err) {
      this.stats.receiptsUnverified++;
      this.report(new Error(`receipt of event ${result.event_id} does not verify: ${(err as Error).message}`));
    }
  }
}
