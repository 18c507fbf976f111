/**
 * The shapes of the wire: the event a producer sends (EVENT-SCHEMA.md §1) and the answers of
 * `/v1/...` as the server writes them (`crates/evident-wire/src/api.rs`). Types only, no code.
 */

/** What happened, closed vocabulary of the schema. */
export type Action =
  | "create"
  | "read"
  | "update"
  | "delete"
  | "list"
  | "search"
  | "export"
  | "login"
  | "logout"
  | "grant"
  | "revoke"
  | "configure"
  | "other";

export type ActorType = "user" | "admin" | "service" | "system" | "api_key" | "anonymous";
export type Outcome = "success" | "failure" | "unknown";
export type Severity = "info" | "low" | "medium" | "high" | "critical";
export type DataClass = "pii" | "phi" | "pci" | "financial" | "secret";

export interface Actor {
  /** Stable, never a shared account. */
  id: string;
  type?: ActorType;
  /** Personal: sealed per subject. */
  display?: string;
  /** Required when delegated or impersonated. */
  on_behalf_of?: string;
  session?: string;
  auth?: { method?: string; mfa?: boolean };
}

export interface Target {
  type: string;
  id: string;
  /** Personal: sealed per subject. */
  display?: string;
}

export interface Change {
  /** A JSON pointer, e.g. `/email`. */
  field: string;
  /** Personal by default. */
  before?: unknown;
  /** Personal by default. */
  after?: unknown;
}

export interface Origin {
  /** Personal. */
  ip?: string;
  /** Personal. */
  user_agent?: string;
  host?: string;
  service?: string;
}

export interface Correlation {
  traceparent?: string;
  request_id?: string;
  correlation_id?: string;
}

/**
 * An audit event as a producer sends it. `id` and `time` may be left out when recording: the
 * client fills them in (a random UUID, the current time) before the event is spooled, so every
 * retry carries the same values.
 */
export interface AuditEvent {
  /** With `source`, the idempotency key: a repeat is answered with the original receipt. */
  id: string;
  /** The producing system, e.g. `//crm.example.com/support-api`. */
  source: string;
  /** Dotted, e.g. `customer.record.updated`. */
  type: string;
  action: Action;
  /** RFC 3339. */
  time: string;
  actor: Actor;
  /** The data subject (customer) as a pseudonymous id. */
  subject?: string;
  targets: Target[];
  outcome: Outcome;
  /** Failure reason code, or the purpose of the access. */
  reason?: string;
  changes?: Change[];
  origin: Origin;
  correlation?: Correlation;
  severity?: Severity;
  data_classes?: DataClass[];
  metadata?: Record<string, string>;
}

/** What `record` takes: an event whose `id`, `time` and `source` may still be missing. */
export type EventInput = Omit<AuditEvent, "id" | "time" | "source"> & {
  id?: string;
  time?: string | Date;
  source?: string;
};

/** What became of one submitted event. */
export type ItemStatus = "stored" | "duplicate" | "conflict" | "rejected";

/** One failing field of a request. */
export interface InvalidParam {
  /** Dotted path of the field, e.g. `actor.id` or `targets[0].type`. */
  name: string;
  /** The rule that failed, e.g. `required`, `enum`, `format`. */
  rule: string;
  reason: string;
}

/** An RFC 9457 problem details body: every error answer. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  "invalid-params"?: InvalidParam[];
}

/** The result of one submitted event, in the order sent (a receipt when stored or duplicate). */
export interface ItemResult {
  status: ItemStatus;
  event_id?: string;
  /** Leaf index in the tenant's log. */
  index?: number;
  /** Size of the checkpoint that covers the event. */
  tree_size?: number;
  /** The signed checkpoint (C2SP signed note) covering the event. */
  checkpoint?: string;
  warnings?: string[];
  /** Why the event was not stored. */
  errors?: InvalidParam[];
}

/** Answer of `POST /v1/events`. */
export interface IngestResponse {
  receipts: ItemResult[];
}

export type Personal = "none" | "withheld" | "included" | "erased";

/** One event as reads return it. */
export interface EventView {
  index: number;
  event_id: string;
  personal: Personal;
  /** The stored event: the skeleton, with personal values merged in when `personal` is `included`. */
  event: AuditEvent & { event_id: string; tenant: string; recorded_at: string };
}

/** A page of events. */
export interface EventPage {
  events: EventView[];
  /** Pass as `cursor` for the next page; absent on the last page. */
  next_cursor?: string;
}

/** Filters and paging of `GET /v1/events`. */
export interface SearchParams {
  from?: string;
  to?: string;
  actor?: string;
  subject?: string;
  target_type?: string;
  target_id?: string;
  /** An event type, or a prefix ending in `*` (`customer.*`), which the server matches. */
  type?: string;
  action?: string;
  outcome?: string;
  source?: string;
  order?: "newest" | "oldest";
  limit?: number;
  cursor?: string;
  purpose?: string;
}

/** A consistency proof (RFC 9162 §2.1.4) between two sizes of a log, hashes in base64. */
export interface ConsistencyProof {
  from: number;
  to: number;
  proof: string[];
}
