// The building blocks of every view: elements (data always goes in as text, never as markup),
// formatted values, cards and tables, and how work in progress and failures show.

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
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids) {
    if (k == null || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else el.append(k instanceof Node ? k : String(k));
  }
}

// Replaces el's children (the same child rules as h).
export function setChildren(el, ...kids) {
  el.replaceChildren();
  append(el, kids);
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// ---- values ----

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

// A turn (or a session's last_turn): its state and why it yielded.
export const turnOutcome = (t) => (t ? [badge(t.state), t.yield_reason ? ` ${t.yield_reason}` : ''] : '—');

// An error object of the API ({code, message}) as one line.
export const errorText = (e) => `${e.code || 'error'}: ${e.message || ''}`;

// ---- cards and tables ----

// A card: its heading (an element), a Refresh button when `reload` is given, then `kids`.
export function card(heading, reload, ...kids) {
  const title = heading.textContent;
  return h('section', { class: 'card', 'aria-label': title },
    h('div', { class: 'head' }, heading, reload
      ? h('button', { type: 'button', class: 'secondary small-btn', 'aria-label': `Refresh ${title.toLowerCase()}`, onclick: () => reload() }, 'Refresh')
      : null),
    ...kids);
}

// A table with a header row; `body` is the tbody to fill (see showRows).
export function table(attrs, heads, body) {
  return h('div', { class: 'table-wrap' },
    h('table', attrs, h('thead', null, h('tr', null, heads.map((t) => h('th', { scope: 'col' }, t)))), body));
}

// Fills the tbody of a table: one row per item, or one row saying `emptyText`.
export function showRows(body, items, toRow, emptyText) {
  const columns = body.parentNode.tHead.rows[0].cells.length;
  setChildren(body, items.length
    ? items.map((item) => toRow(item))
    : h('tr', { class: 'empty' }, h('td', { colspan: columns }, emptyText)));
}

// ---- work in progress and failures ----

// The error banner (#error): the message and the request id of an API error.
export function showError(err) {
  if (!err || err.silent || err.name === 'AbortError') return;
  const box = $('#error');
  setChildren(box,
    h('p', null, h('strong', null, 'Error: '), err.message || String(err)),
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

// Runs `work` with `button` disabled; failures go to the banner. Resolves to work's result,
// or undefined when it failed.
export async function whileDisabled(button, work) {
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

// Runs `load` with `region` marked busy; a failure goes to the banner. Never rejects.
export async function loadInto(region, load) {
  region.setAttribute('aria-busy', 'true');
  try {
    await load();
  } catch (err) {
    showError(err);
  } finally {
    region.removeAttribute('aria-busy');
  }
}
