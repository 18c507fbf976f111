// The console talks JSON to the same /v1 API as every client, with its session cookie; a change
// carries the session's CSRF token. The server decides what the role may do.

export const session = { info: null };

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function problem(response) {
  try { return await response.json(); } catch { return null; }
}

/** A request to the API; answers parsed JSON (or text for text answers). */
export async function call(method, path, { query, body, as = 'json' } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  const headers = { Accept: as === 'json' ? 'application/json' : '*/*' };
  if (method !== 'GET' && session.info) headers['X-CSRF-Token'] = session.info.csrf_token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(url, {
    method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && path !== '/console/session') {
    session.info = null;
    window.dispatchEvent(new Event('evident:signed-out'));
  }
  if (!response.ok) throw new ApiError(response.status, await problem(response));
  if (response.status === 204) return null;
  if (as === 'text') return response.text();
  if (as === 'bytes') return new Uint8Array(await response.arrayBuffer());
  return response.json();
}

export const get = (path, query, as) => call('GET', path, { query, as });
export const post = (path, body) => call('POST', path, { body });
export const put = (path, body) => call('PUT', path, { body });
export const del = (path, body) => call('DELETE', path, { body });

/** Whether the signed-in role may do `what` (read, review, admin, privacy). */
export function may(what) {
  return Boolean(session.info?.may.includes(what));
}
