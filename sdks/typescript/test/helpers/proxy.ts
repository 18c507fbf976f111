/**
 * A fault-injecting HTTP proxy in front of the real server (never instead of it): each request
 * takes the next scripted fault, then requests pass through. It keeps every request it saw.
 */

import * as http from "node:http";

/**
 * `pass`: forward and answer what the server answered. `503`: answer 503 with `Retry-After: 1`
 * without forwarding. `lost`: forward, then close the connection without answering (the server
 * stored the batch, the client never hears). `reset`: close the connection at once.
 */
export type Fault = "pass" | "503" | "lost" | "reset";

export interface SeenRequest {
  path: string;
  body: string;
  at: number;
  fault: Fault;
}

export interface Proxy {
  url: string;
  seen: SeenRequest[];
  close(): Promise<void>;
}

export async function startProxy(upstream: string, faults: Fault[]): Promise<Proxy> {
  const seen: SeenRequest[] = [];
  const script = [...faults];
  const server = http.createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    const fault = script.shift() ?? "pass";
    seen.push({ path: request.url ?? "", body, at: Date.now(), fault });
    if (fault === "reset") {
      request.socket.destroy();
      return;
    }
    if (fault === "503") {
      response.writeHead(503, { "retry-after": "1", "content-type": "application/problem+json" });
      response.end(JSON.stringify({ type: "about:blank", title: "unavailable", status: 503 }));
      return;
    }
    const headers: Record<string, string> = {};
    for (const name of ["authorization", "content-type"]) {
      const value = request.headers[name];
      if (typeof value === "string") headers[name] = value;
    }
    const answer = await fetch(`${upstream}${request.url}`, {
      method: request.method ?? "GET",
      headers,
      body: request.method === "GET" ? undefined : body,
    });
    const text = await answer.text();
    if (fault === "lost") {
      request.socket.destroy();
      return;
    }
    response.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "application/json" });
    response.end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
