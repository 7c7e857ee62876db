// DOM helpers shared by every view. Data always goes in as text (never as markup).

const PROPS = new Set(['value', 'checked', 'selected']);

// h('tag', {attr: value, onclick: fn}, ...children): builds an element.
// Children may be nodes, strings, numbers, arrays, or null/false (skipped).
export function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  add(el, kids);
  return el;
}

function add(el, kids) {
  for (const k of kids) {
    if (k == null || k === false) continue;
    if (Array.isArray(k)) add(el, k);
    else el.append(k instanceof Node ? k : String(k));
  }
}

// Replaces el's children (same child rules as h).
export function put(el, ...kids) {
  el.replaceChildren();
  add(el, kids);
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// Query string from an object, skipping empty values.
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? '?' + s : '';
}

export const enc = encodeURIComponent;

export function when(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString();
}

export function timeOnly(ts) {
  const d = new Date(ts);
  return ts && !Number.isNaN(d.getTime()) ? d.toLocaleTimeString() : '';
}

export const dash = (v) => (v == null || v === '' ? '—' : String(v));

export function badge(text, kind = text) {
  return h('span', { class: 'badge b-' + String(kind || 'none').replace(/[^a-z0-9_-]/gi, '') }, dash(text));
}

// A table with a header row; `body` is the tbody to fill.
export function table(attrs, heads, body) {
  return h('div', { class: 'table-wrap' },
    h('table', attrs, h('thead', null, h('tr', null, heads.map((t) => h('th', { scope: 'col' }, t)))), body));
}

export function emptyRow(cols, text) {
  return h('tr', { class: 'empty' }, h('td', { colspan: cols }, text));
}

// The error banner (#error): the message and the request id of an API error.
export function showError(err) {
  if (!err || err.silent || err.name === 'AbortError') return;
  const box = $('#error');
  const msg = err.message || String(err);
  put(box,
    h('p', null, h('strong', null, 'Error: '), msg),
    err.requestId ? h('p', { class: 'muted' }, 'Request id: ', h('code', { class: 'request-id' }, err.requestId)) : null,
    h('button', { type: 'button', class: 'link', onclick: clearError }, 'Dismiss'),
  );
  box.hidden = false;
}

export function clearError() {
  const box = $('#error');
  box.hidden = true;
  box.replaceChildren();
}

// Wraps an async handler: its failures go to the banner, never unhandled.
export function safe(fn) {
  return (...args) => {
    Promise.resolve().then(() => fn(...args)).catch(showError);
  };
}

// Runs `work` with `button` disabled; errors go to the banner. Resolves to work's result or undefined.
export async function busy(button, work) {
  if (button) button.disabled = true;
  try {
    return await work();
  } catch (err) {
    showError(err);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// Loads into `target`, showing a neutral state while it runs and the error in the banner on failure.
export async function fill(target, load) {
  target.setAttribute('aria-busy', 'true');
  try {
    await load();
  } catch (err) {
    showError(err);
  } finally {
    target.removeAttribute('aria-busy');
  }
}
