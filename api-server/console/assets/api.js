// Calls to the console endpoints (cookie + CSRF header) and to /v3 with a client token.
// The CSRF token lives in memory only.

let csrf = null;
let expired = () => {};

export const setCsrf = (token) => { csrf = token || null; };
export const onExpired = (fn) => { expired = fn; };

// An error envelope ({"error":{type, code, message, param?, request_id}}) as an Error.
export class ApiError extends Error {
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
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(res.status, { message: 'The server answered something that is not JSON' });
  }
}

const writeHeaders = (method) => (method === 'GET' ? {} : { 'X-Sealpod-CSRF': csrf || '' });

// The sign-in endpoint: GET (who am I), POST {api_key} (sign in), DELETE (sign out).
export const consoleSession = (method, body) => send('/console/api/session', method, body, writeHeaders(method));

// A /v3 call through the console (cookie). A 401 means the sign-in is gone.
export async function api(method, path, body) {
  try {
    return await send('/console/api/v3' + path, method, body, writeHeaders(method));
  } catch (err) {
    if (err.status === 401) expire(err);
    throw err;
  }
}

export function expire(err) {
  if (err) err.silent = true;
  csrf = null;
  expired();
}

// A /v3 call with a client token (the end-user view).
export const bearer = (token, method, path, body) =>
  send('/v3' + path, method, body, { Authorization: 'Bearer ' + token });

// Loads every page of a list (bounded).
export async function all(path, max = 10) {
  const out = [];
  let cursor = null;
  for (let i = 0; i < max; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', path + (cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ''));
    out.push(...(Array.isArray(page) ? page : page.data || []));
    cursor = page && page.next_cursor;
    if (!cursor) break;
  }
  return out;
}
