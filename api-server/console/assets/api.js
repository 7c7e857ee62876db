// HTTP calls: the console's own endpoints (sign-in cookie + CSRF header), the /v3 mirror behind
// them, and /v3 with a client token (the end-user view). The CSRF token lives in memory only.

let csrf = null;
let signInLost = () => {};

export const setCsrf = (token) => { csrf = token || null; };
// `fn` runs when a call finds the sign-in gone (401).
export const onExpired = (fn) => { signInLost = fn; };

export const enc = encodeURIComponent;

// `path` with `params` added to its query, leaving out empty values.
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') query.set(k, String(v));
  const s = query.toString();
  return s ? path + (path.includes('?') ? '&' : '?') + s : path;
}

// An error envelope ({"error":{type, code, message, param?, request_id}}) as an Error.
class ApiError extends Error {
  constructor(status, e) {
    super((e && e.message) || (status ? `Request failed (${status})` : 'The server could not be reached'));
    this.name = 'ApiError';
    this.status = status;
    this.type = e && e.type;
    this.code = e && e.code;
    this.param = e && e.param;
    this.requestId = e && e.request_id;
  }
}

export async function errorFrom(res) {
  let env = null;
  try {
    env = (await res.json()).error;
  } catch {
    env = null;
  }
  return new ApiError(res.status, env && typeof env === 'object' ? env : null);
}

async function send(url, method, body, headers) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch {
    throw new ApiError(0, null);
  }
  if (!res.ok) throw await errorFrom(res);
  const text = res.status === 204 ? '' : await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(res.status, { message: 'The server answered something that is not JSON' });
  }
}

const csrfHeader = (method) => (method === 'GET' ? {} : { 'X-Sealpod-CSRF': csrf || '' });

// The sign-in endpoint: GET (who am I), POST {api_key} (sign in), DELETE (sign out).
export const consoleSession = (method, body) => send('/console/api/session', method, body, csrfHeader(method));

// A /v3 call through the console (cookie). A 401 means the sign-in is gone.
export async function api(method, path, body) {
  try {
    return await send('/console/api/v3' + path, method, body, csrfHeader(method));
  } catch (err) {
    if (err.status === 401) expire(err);
    throw err;
  }
}

// Forgets the sign-in; `err`, the refusal that showed it, is not shown again.
export function expire(err) {
  if (err) err.silent = true;
  csrf = null;
  signInLost();
}

// A /v3 call with a client token (the end-user view).
export const bearer = (token, method, path, body) =>
  send('/v3' + path, method, body, { Authorization: 'Bearer ' + token });

// Every item of a paged list, following its cursors (at most `maxPages` pages).
export async function listAll(path, maxPages = 10) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < maxPages; i++) {
    const page = await api('GET', withQuery(path, { cursor }));
    items.push(...((page && page.data) || []));
    cursor = page && page.next_cursor;
    if (!cursor) break;
  }
  return items;
}
