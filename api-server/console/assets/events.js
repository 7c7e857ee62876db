// The conversation, shared by the admin and end-user views: events rendered by kind, the live
// event list (#events) and the steer form (#steer).

import { withQuery } from './api.js';
import { errorText, h, showError, timeOnly } from './dom.js';
import { readStream } from './sse.js';

export const LEVELS = ['user', 'progress', 'internal'];
// A refused connection and a sealed token used where it may not go.
export const EGRESS_TYPES = ['egress.denied', 'egress.token_misuse'];

// Long text collapses into <details>.
export function textBlock(text, cls = 'out') {
  const s = typeof text === 'string' ? text : JSON.stringify(text, null, 2) ?? '';
  const lines = s.split('\n').length;
  const pre = h('pre', { class: cls }, s);
  if (lines <= 20 && s.length <= 2000) return pre;
  return h('details', { class: 'long' },
    h('summary', null, `Show ${lines} lines (${s.length} characters)`), pre);
}

const compact = (v) => {
  try {
    return JSON.stringify(v) ?? 'null';
  } catch {
    return String(v);
  }
};

const isObj = (v) => v != null && typeof v === 'object' && !Array.isArray(v);

// An event's body when it is an object, else {}.
export const bodyOf = (ev) => (isObj(ev.body) ? ev.body : {});

// One event as a list item: data-seq, data-type, a kind class, the seq and time.
function renderEvent(ev) {
  const type = String(ev.type || 'event');
  const b = bodyOf(ev);
  const actor = isObj(ev.actor) ? ev.actor : {};
  let kind = 'other';
  let label = type;
  let failed = false;
  let content;
  if (type === 'user.message' || (type.endsWith('.message') && actor.type === 'human')) {
    kind = 'user';
    label = actor.display || 'User';
    content = textBlock(b.text ?? '', 'text');
  } else if (type.startsWith('agent.') && typeof b.text === 'string') {
    kind = ev.level === 'user' ? 'agent' : 'narration';
    label = actor.display || 'Agent';
    content = textBlock(b.text, 'text');
  } else if (type === 'tool.call' || type === 'tool.use') {
    kind = 'tool';
    label = 'Tool call';
    const input = b.input ?? b.args ?? b.args_summary ?? '';
    content = [h('p', { class: 'tool-name' }, h('code', null, String(b.tool ?? b.name ?? '?'))), input === '' ? null : textBlock(input)];
  } else if (type === 'tool.result' || type === 'exec.completed') {
    kind = 'result';
    failed = b.is_error === true || (b.error != null && b.error !== false) ||
      (b.exit_code != null && Number(b.exit_code) !== 0);
    label = failed ? 'Tool result (error)' : 'Tool result';
    const out = b.summary ?? b.output ?? b.content ?? (typeof b.error === 'string' ? b.error : '');
    content = [
      b.command || b.tool ? h('p', { class: 'tool-name' }, h('code', null, String(b.command || b.tool))) : null,
      b.exit_code != null || b.bytes != null
        ? h('p', { class: 'muted' }, [b.exit_code != null ? `exit ${b.exit_code}` : null, b.bytes != null ? `${b.bytes} bytes` : null].filter(Boolean).join(' · '))
        : null,
      out === '' ? null : textBlock(out),
    ];
  } else if (type.startsWith('turn.')) {
    kind = 'turn';
    const reason = b.yield_reason ?? b.outcome;
    failed = type === 'turn.failed' || reason === 'error';
    if (type === 'turn.started') {
      label = 'Turn started';
      content = b.input_from_seq != null ? h('p', { class: 'muted' }, `input seq ${b.input_from_seq}–${b.input_to_seq ?? b.input_from_seq}`) : null;
    } else {
      label = failed ? 'Turn failed' : type === 'turn.completed' ? 'Turn completed' : type;
      const err = isObj(b.error) ? errorText(b.error) : b.error;
      content = h('p', null, reason ? `yield reason: ${reason}` : null, err ? h('span', { class: 'err' }, ` — ${err}`) : null);
    }
  } else if (EGRESS_TYPES.includes(type)) {
    kind = 'egress';
    failed = true;
    label = type === 'egress.denied' ? 'Egress refused' : 'Token tripwire';
    content = h('p', null, h('code', null, `${b.host ?? '?'}:${b.port ?? '?'}`), ` ${b.reason ?? ''}`, b.mode ? h('span', { class: 'muted' }, ` (${b.mode})`) : null);
  } else if (type.startsWith('error.')) {
    kind = 'error';
    failed = true;
    label = 'Error';
    content = h('p', { class: 'err' }, `${b.code ?? type}: ${b.message ?? compact(ev.body)}`);
  } else {
    content = textBlock(compact(ev.body ?? null), 'json');
  }
  if (ev.body_truncated) {
    content = [content, h('p', { class: 'muted' }, `Body truncated${ev.body_bytes ? ` (${ev.body_bytes} bytes in full)` : ''}.`)];
  }
  return h('li', {
    class: `ev ev-${kind}${failed ? ' failed' : ''}`,
    'data-seq': ev.seq,
    'data-type': type,
    'data-level': ev.level,
    'data-error': failed,
  },
  h('div', { class: 'ev-meta' },
    h('span', { class: 'seq' }, `#${ev.seq}`),
    h('time', { datetime: ev.ts }, timeOnly(ev.ts)),
    h('strong', { class: 'ev-label' }, label),
    failed ? h('span', { class: 'badge b-failed' }, 'error') : null,
    h('span', { class: 'ev-type' }, type),
    ev.level ? h('span', { class: 'lvl' }, ev.level) : null),
  content);
}

const STATE_TEXT = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', ended: 'Ended', stopped: 'Stopped' };

// The event list with its level filter. `path` is the events URL without a query.
// Changing the level restarts the stream; `signal` ends it with the page.
// onEvent(event) runs after each event is shown; onFatal and resume are readStream's.
export function eventsPanel({ path, headers = {}, level = 'user', signal, onEvent = () => {}, onFatal, resume }) {
  const list = h('ol', { id: 'events', class: 'events', role: 'log', 'aria-label': 'Events' });
  const empty = h('p', { class: 'muted', id: 'events-empty' }, 'No events yet.');
  const streamState = h('span', { id: 'stream-status', class: 'stream-state', 'aria-live': 'polite' }, '');
  const select = h('select', { id: 'level', name: 'level' },
    LEVELS.map((l) => h('option', { value: l, selected: l === level }, l)));
  let stream = null; // AbortController of the running stream

  const show = (ev) => {
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    empty.hidden = true;
    list.append(renderEvent(ev));
    if (atBottom) list.scrollTop = list.scrollHeight;
    onEvent(ev);
  };

  const start = () => {
    if (stream) stream.abort();
    stream = new AbortController();
    list.replaceChildren();
    empty.hidden = false;
    readStream({
      url: withQuery(path, { stream: 'sse', level: select.value }),
      headers,
      signal: stream.signal,
      resume,
      onEvent: show,
      onState: (s) => {
        streamState.textContent = STATE_TEXT[s] || s;
        streamState.dataset.state = s;
      },
      onFatal,
    });
  };

  select.addEventListener('change', start);
  signal.addEventListener('abort', () => stream && stream.abort(), { once: true });
  start();
  return h('div', { class: 'events-panel' },
    h('div', { class: 'toolbar' },
      h('label', { for: 'level' }, 'Level'), select, streamState),
    list, empty);
}

// The steer form (#steer, #steer-text): Enter sends, Shift+Enter starts a new line.
export function steerForm(send) {
  const text = h('textarea', { id: 'steer-text', name: 'text', rows: 3, required: true, placeholder: 'Message to the agent' });
  const button = h('button', { type: 'submit' }, 'Send');
  const note = h('p', { class: 'muted', 'aria-live': 'polite' }, '');
  const form = h('form', { id: 'steer', class: 'steer' },
    h('label', { for: 'steer-text' }, 'Send a message'), text,
    h('div', { class: 'row' }, button, note));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = text.value.trim();
    if (!value || button.disabled) return;
    button.disabled = true;
    note.textContent = 'Sending…';
    try {
      const r = await send(value);
      text.value = '';
      note.textContent = r && r.event ? `Sent (seq ${r.event.seq}).` : 'Sent.';
    } catch (err) {
      note.textContent = '';
      showError(err);
    } finally {
      button.disabled = false;
    }
  });
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  return form;
}
