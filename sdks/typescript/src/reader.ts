/**
 * `Reader`: the read side of the API for a key with a read role (`reader`, `investigator`,
 * `auditor`, `admin`): search, one event, its entry bytes and receipt, the log's keys, and
 * fetching plus verifying a receipt. Producer keys cannot read; every read is itself audited by
 * the server.
 */

import { InvalidInputError } from "./errors.js";
import { verifyReceipt, type VerifiedReceipt } from "./note.js";
import type { ConsistencyProof, EventPage, EventView, Problem, SearchParams } from "./types.js";

/** The server answered with a problem (RFC 9457). */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly problem: Problem | undefined,
    what: string,
  ) {
    super(`${what}: ${status} ${problem ? [problem.title, problem.detail].filter(Boolean).join(": ") : ""}`.trim());
  }
}

export interface ReaderOptions {
  url: string;
  apiKey: string;
  /** The tenant whose log `vkeys` and `checkpoint` read (default `default`; a key reads its own tenant). */
  tenant?: string;
  requestTimeoutMs?: number;
}

export class Reader {
  private readonly base: string;
  private readonly tenant: string;
  private readonly timeoutMs: number;

  constructor(private readonly options: ReaderOptions) {
    try {
      this.base = new URL(options.url.endsWith("/") ? options.url : `${options.url}/`).href;
    } catch {
      throw new InvalidInputError("url", `${JSON.stringify(options.url)} is not a URL`);
    }
    if (typeof options.apiKey !== "string" || options.apiKey === "") {
      throw new InvalidInputError("apiKey", "must be a key with a read role");
    }
    this.tenant = options.tenant ?? "default";
    this.timeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  private async get(pathAndQuery: string): Promise<Response> {
    const url = new URL(pathAndQuery, this.base).href;
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${this.options.apiKey}` },
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!response.ok) {
      const problem = (await response.json().catch(() => undefined)) as Problem | undefined;
      throw new ApiError(response.status, problem, `GET ${url}`);
    }
    return response;
  }

  /** `GET /v1/events`: one page of a search. */
  async search(params: SearchParams = {}): Promise<EventPage> {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined) query.set(name, String(value));
    }
    return (await (await this.get(`v1/events?${query}`)).json()) as EventPage;
  }

  /** Every event of a search, following `next_cursor`. */
  async *searchAll(params: SearchParams = {}): AsyncGenerator<EventView> {
    let cursor: string | undefined = params.cursor;
    do {
      const page: EventPage = await this.search({ ...params, ...(cursor !== undefined && { cursor }) });
      yield* page.events;
      cursor = page.next_cursor;
    } while (cursor !== undefined);
  }

  /** `GET /v1/events/{event_id}`. */
  async event(eventId: string): Promise<EventView> {
    return (await (await this.get(`v1/events/${encodeURIComponent(eventId)}`)).json()) as EventView;
  }

  /** `GET /v1/events/{event_id}/entry`: the exact bytes the log committed to. */
  async entry(eventId: string): Promise<Uint8Array> {
    const response = await this.get(`v1/events/${encodeURIComponent(eventId)}/entry`);
    return new Uint8Array(await response.arrayBuffer());
  }

  /** `GET /v1/events/{event_id}/proof`: a `c2sp.org/tlog-proof@v1` text at the latest checkpoint. */
  async proof(eventId: string): Promise<string> {
    return (await this.get(`v1/events/${encodeURIComponent(eventId)}/proof`)).text();
  }

  /** `GET /v1/logs/{tenant}/vkeys`: fetch once, keep, and pass to verification. */
  async vkeys(): Promise<string[]> {
    const text = await (await this.get(`v1/logs/${encodeURIComponent(this.tenant)}/vkeys`)).text();
    return text.split("\n").filter((line) => line.trim() !== "");
  }

  /** `GET /v1/logs/{tenant}/checkpoint`: the latest signed checkpoint. */
  async checkpoint(): Promise<string> {
    return (await this.get(`v1/logs/${encodeURIComponent(this.tenant)}/checkpoint`)).text();
  }

  /** `GET /v1/logs/{tenant}/consistency?from=A&to=B`: check it with `verifyConsistency`. */
  async consistency(from: number, to: number): Promise<ConsistencyProof> {
    const path = `v1/logs/${encodeURIComponent(this.tenant)}/consistency?from=${from}&to=${to}`;
    return (await (await this.get(path)).json()) as ConsistencyProof;
  }

  /**
   * Fetches an event's receipt and entry and verifies them against `vkeys` (pinned by the caller,
   * never fetched here: a key from the same server would prove nothing).
   */
  async verifyEvent(eventId: string, vkeys: string[]): Promise<VerifiedReceipt> {
    const [proof, entry] = await Promise.all([this.proof(eventId), this.entry(eventId)]);
    return verifyReceipt({ proof, entry, vkeys });
  }
}
