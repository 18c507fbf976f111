// A small customer API that records every read and change of a customer record in Evident.
//
// Each handler records its audit event before it answers (and, for changes, before it applies
// them): `record` resolves once the event is durable in the local spool, so an answered request
// always has its audit event, even if Evident is down at that moment; the client delivers it
// later. If the spool is full, the request fails with 503 and nothing changes (fail closed).
//
// Settings (environment): EVIDENT_URL and EVIDENT_API_KEY (a producer key); without a key, a
// local `evident serve` is started for you (see dev-evident.js). PORT (default 3000; 0 picks one),
// EVIDENT_SPOOL_DIR (default ./.evident-spool).

import { randomUUID } from "node:crypto";

import { Client, SpoolFullError } from "evident";
import express from "express";

import { startLocalEvident } from "./dev-evident.js";

const SOURCE = "//example.com/customer-api";

const local = process.env.EVIDENT_API_KEY ? undefined : await startLocalEvident();
const evident = new Client({
  url: process.env.EVIDENT_URL ?? local.url,
  apiKey: process.env.EVIDENT_API_KEY ?? local.producerKey,
  spoolDir: process.env.EVIDENT_SPOOL_DIR ?? ".evident-spool",
  source: SOURCE,
  onError: (error) => console.error(`evident: ${error.message}`),
});

/** The application's own data: customers by id. */
const customers = new Map();
const EDITABLE = ["name", "email", "phone", "address"];

/** Who is calling: a real app takes this from its session; here, the `X-User` header. */
function actorOf(req) {
  return { id: req.get("x-user") ?? "anonymous", type: req.get("x-user") ? "user" : "anonymous" };
}

/** The audit event of one request on one customer record. */
function auditEvent(req, { type, action, customerId, outcome = "success", reason, changes }) {
  const event = {
    type,
    action,
    actor: actorOf(req),
    subject: customerId,
    targets: [{ type: "customer", id: customerId }],
    outcome,
    origin: {
      ip: req.ip,
      service: "customer-api",
      ...(req.get("user-agent") && { user_agent: req.get("user-agent") }),
    },
    correlation: { request_id: req.requestId },
    data_classes: ["pii"],
  };
  if (reason) event.reason = reason;
  if (changes) event.changes = changes;
  return event;
}

/** `{field, before, after}` for each editable field the update changes (JSON pointers). */
function diff(before, after) {
  return EDITABLE.filter((field) => before?.[field] !== after?.[field]).map((field) => ({
    field: `/${field}`,
    ...(before?.[field] !== undefined && { before: before[field] }),
    ...(after?.[field] !== undefined && { after: after[field] }),
  }));
}

const app = express();
app.use(express.json());
app.use((req, _res, next) => {
  req.requestId = req.get("x-request-id") ?? randomUUID();
  next();
});

/** Records the event, then runs `answer`; a full spool fails the request with 503. */
async function audited(req, res, event, answer) {
  try {
    await evident.record(event);
  } catch (error) {
    if (error instanceof SpoolFullError) {
      res.set("retry-after", "5").status(503).json({ error: "the audit trail is unavailable; try again" });
      return;
    }
    throw error;
  }
  answer();
}

app.post("/customers", async (req, res) => {
  const id = `cus_${randomUUID().slice(0, 8)}`;
  const record = Object.fromEntries(
    EDITABLE.filter((f) => req.body?.[f] !== undefined).map((f) => [f, String(req.body[f])]),
  );
  const event = auditEvent(req, {
    type: "customer.record.created",
    action: "create",
    customerId: id,
    changes: diff(undefined, record),
  });
  await audited(req, res, event, () => {
    customers.set(id, record);
    res.status(201).json({ id, ...record });
  });
});

app.get("/customers/:id", async (req, res) => {
  const record = customers.get(req.params.id);
  const event = auditEvent(req, {
    type: "customer.record.viewed",
    action: "read",
    customerId: req.params.id,
    ...(record ? { reason: req.get("x-purpose") } : { outcome: "failure", reason: "not_found" }),
  });
  await audited(req, res, event, () =>
    record ? res.json({ id: req.params.id, ...record }) : res.status(404).json({ error: "no such customer" }),
  );
});

app.patch("/customers/:id", async (req, res) => {
  const before = customers.get(req.params.id);
  if (!before) return res.status(404).json({ error: "no such customer" });
  const after = { ...before };
  for (const field of EDITABLE) if (req.body?.[field] !== undefined) after[field] = String(req.body[field]);
  const event = auditEvent(req, {
    type: "customer.record.updated",
    action: "update",
    customerId: req.params.id,
    changes: diff(before, after),
  });
  await audited(req, res, event, () => {
    customers.set(req.params.id, after);
    res.json({ id: req.params.id, ...after });
  });
});

app.delete("/customers/:id", async (req, res) => {
  const before = customers.get(req.params.id);
  if (!before) return res.status(404).json({ error: "no such customer" });
  const event = auditEvent(req, {
    type: "customer.record.deleted",
    action: "delete",
    customerId: req.params.id,
    changes: diff(before, undefined),
  });
  await audited(req, res, event, () => {
    customers.delete(req.params.id);
    res.status(204).end();
  });
});

/** The spool's depth and oldest age, for Prometheus. */
app.get("/metrics", (_req, res) => res.type("text/plain").send(evident.metricsText()));

const server = app.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  const { port } = server.address();
  console.log(`customer API listening on http://127.0.0.1:${port}`);
  if (local) local.printHelp(port);
});

/** On SIGTERM or Ctrl-C: stop taking requests, deliver what is spooled (up to 5 s), then exit. */
async function shutdown() {
  server.close();
  const delivered = await evident.flush(5000);
  await evident.close();
  if (!delivered) console.error("evident: some events are still spooled; they are sent at the next start");
  await local?.stop();
  process.exit(0);
}
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);
