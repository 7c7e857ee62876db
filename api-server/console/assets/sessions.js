// The sessions list and one session's page.

import { all, api, expire } from './api.js';
import { badge, busy, dash, emptyRow, enc, fill, h, put, qs, safe, showError, table, when } from './dom.js';
import { eventsPanel, steerForm, textBlock } from './events.js';

const STATUSES = ['queued', 'running', 'awaiting_input', 'idle', 'failed', 'archived'];
const PAGE = 25;

const lastTurn = (t) => (t ? [badge(t.state), t.yield_reason ? ` ${t.yield_reason}` : ''] : '—');

export async function sessionsPage(main, signal) {
  const status = h('select', { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'Any status'), STATUSES.map((s) => h('option', { value: s }, s)));
  const agent = h('select', { id: 'filter-agent', name: 'agent' }, h('option', { value: '' }, 'Any agent'));
  const body = h('tbody');
  const prev = h('button', { type: 'button', id: 'prev-page', class: 'secondary', disabled: true }, 'Previous');
  const next = h('button', { type: 'button', id: 'next-page', class: 'secondary', disabled: true }, 'Next');
  const names = new Map();
  let stack = [];
  let cursor = null;
  let nextCursor = null;

  const load = () => fill(body, async () => {
    prev.disabled = true;
    next.disabled = true;
    const page = await api('GET', '/sessions' + qs({ status: status.value, agent: agent.value, limit: PAGE, cursor }));
    if (signal.aborted) return;
    const rows = page.data || [];
    nextCursor = page.next_cursor || null;
    body.replaceChildren(...(rows.length ? rows.map((s) => h('tr', { 'data-session': s.id, 'data-status': s.status },
      h('td', null, h('a', { href: `/console/sessions/${enc(s.id)}` }, s.id)),
      h('td', null, badge(s.status)),
      h('td', null, names.get(s.agent_id) || s.agent_id, names.has(s.agent_id) ? h('div', { class: 'muted small' }, s.agent_id) : null),
      h('td', null, lastTurn(s.last_turn)),
      h('td', null, dash(s.head)),
      h('td', null, when(s.created_at)),
      h('td', null, when(s.updated_at)))) : [emptyRow(7, 'No sessions match.')]));
    prev.disabled = stack.length === 0;
    next.disabled = !nextCursor;
  });

  const restart = () => {
    stack = [];
    cursor = null;
    load();
  };
  status.addEventListener('change', restart);
  agent.addEventListener('change', restart);
  next.addEventListener('click', () => {
    if (!nextCursor) return;
    stack.push(cursor);
    cursor = nextCursor;
    load();
  });
  prev.addEventListener('click', () => {
    if (!stack.length) return;
    cursor = stack.pop();
    load();
  });

  const filters = h('form', { class: 'filters', id: 'session-filters' },
    h('label', { for: 'filter-status' }, 'Status'), status,
    h('label', { for: 'filter-agent' }, 'Agent'), agent,
    h('button', { type: 'submit', class: 'secondary' }, 'Refresh'));
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    load();
  });

  main.append(h('section', { class: 'card' },
    h('h1', null, 'Sessions'), filters,
    table({ id: 'sessions' }, ['Session', 'Status', 'Agent', 'Last turn', 'Events', 'Created', 'Updated'], body),
    h('div', { class: 'row pager' }, prev, next)));

  // Agent names for the filter and the table; the list works without them.
  all('/agents?limit=200').then((agents) => {
    if (signal.aborted) return;
    for (const a of agents) {
      names.set(a.id, a.name || a.id);
      agent.append(h('option', { value: a.id }, a.name ? `${a.name} (${a.id})` : a.id));
    }
  }).catch(() => {});
  await load();
}

// ---- one session ----

export async function sessionPage(main, signal, id) {
  const base = `/sessions/${enc(id)}`;
  const back = h('p', null, h('a', { href: '/console/sessions' }, '← Sessions'));
  let first;
  try {
    first = await api('GET', base);
  } catch (err) {
    if (signal.aborted) return;
    main.append(back, h('section', { class: 'card' }, h('h1', null, 'Session ', h('code', null, id)),
      h('p', { id: 'session-missing' }, err.status === 404 ? 'This session does not exist.' : 'The session could not be loaded.')));
    throw err;
  }
  if (signal.aborted) return;
  let status = first.status;
  const header = h('div', { class: 'session-head' }, h('h1', null, 'Session ', h('code', null, id)));
  const facts = h('dl', { class: 'facts' });
  const linkOut = h('div', { class: 'mint-out' });
  const ttl = h('select', { id: 'token-ttl', name: 'ttl' },
    [[900, '15 minutes'], [3600, '1 hour'], [28800, '8 hours'], [86400, '24 hours']].map(([v, t]) => h('option', { value: v, selected: v === 3600 }, t)));
  const cancel = h('button', { type: 'button', id: 'cancel', class: 'secondary' }, 'Cancel turn');
  const archive = h('button', { type: 'button', id: 'archive', class: 'danger' }, 'Archive');
  const mint = h('button', { type: 'button', id: 'mint-token' }, 'Mint client token');

  const showSession = (s) => {
    status = s.status;
    put(facts,
      h('dt', null, 'Status'), h('dd', { id: 'session-status', 'data-status': s.status }, badge(s.status)),
      h('dt', null, 'Agent'), h('dd', null, h('code', null, s.agent_id), s.agent_snapshot ? ` · ${s.agent_snapshot.model} · revision ${s.agent_snapshot.revision}` : ''),
      h('dt', null, 'Last turn'), h('dd', null, lastTurn(s.last_turn)),
      h('dt', null, 'Events'), h('dd', null, dash(s.head)),
      h('dt', null, 'Created'), h('dd', null, when(s.created_at)),
      s.key ? [h('dt', null, 'Key'), h('dd', null, h('code', null, s.key))] : null,
      s.metadata != null ? [h('dt', null, 'Metadata'), h('dd', null, h('code', null, JSON.stringify(s.metadata)))] : null);
    const archived = s.status === 'archived';
    archive.disabled = archived;
    mint.disabled = archived;
    cancel.disabled = archived;
  };
  const loadSession = () => fill(facts, async () => {
    const s = await api('GET', base);
    if (!signal.aborted) showSession(s);
  });

  cancel.addEventListener('click', () => busy(cancel, async () => {
    showSession(await api('POST', `${base}/cancel`));
  }));
  archive.addEventListener('click', () => {
    if (!window.confirm('Archive this session? It becomes read-only; its log is kept.')) return;
    busy(archive, async () => {
      showSession(await api('POST', `${base}/archive`));
    });
  });
  mint.addEventListener('click', () => busy(mint, async () => {
    const t = await api('POST', `${base}/client-tokens`, { scopes: ['read', 'steer'], ttl: Number(ttl.value) });
    const link = `${location.origin}/console/s/${enc(id)}#token=${enc(t.token)}`;
    const field = h('input', { id: 'client-link', type: 'text', readonly: true, value: link, 'aria-label': 'End-user link', class: 'mono' });
    const copied = h('span', { class: 'muted', 'aria-live': 'polite' });
    const copy = h('button', {
      type: 'button', id: 'copy-link', class: 'secondary',
      onclick: () => {
        field.select();
        const done = () => { copied.textContent = 'Copied.'; };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(field.value).then(done, () => { copied.textContent = 'Select the text and copy it.'; });
        } else {
          copied.textContent = 'Select the text and copy it.';
        }
      },
    }, 'Copy');
    linkOut.replaceChildren(
      h('label', { for: 'client-link' }, 'End-user link (read + steer, expires ', when(t.expires_at), ')'),
      h('div', { class: 'row' }, field, copy, copied),
      h('p', { class: 'notice' }, 'This link is shown once. Copy it now; anyone with it can read and steer this session until it expires.'));
  }));

  // Turns, result, egress and webhooks refresh shortly after the stream shows activity.
  const turnsBody = h('tbody');
  const resultBox = h('div', { id: 'result' });
  const egressBody = h('tbody');
  const destBody = h('tbody');
  const dlvBody = h('tbody');
  let dlvNext = null;
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');

  const loadTurns = () => fill(turnsBody, async () => {
    const page = await api('GET', `${base}/turns?limit=50`);
    if (signal.aborted) return;
    const turns = page.data || [];
    turnsBody.replaceChildren(...(turns.length ? turns.map((t) => h('tr', { 'data-turn': t.id, 'data-state': t.state },
      h('td', null, dash(t.number)),
      h('td', null, badge(t.state), t.yield_reason ? ` ${t.yield_reason}` : ''),
      h('td', null, when(t.started_at)),
      h('td', null, when(t.completed_at)),
      h('td', null, t.usage && t.usage.tokens != null ? String(t.usage.tokens) : '—'),
      h('td', { class: 'err' }, t.error ? `${t.error.code || 'error'}: ${t.error.message || ''}` : ''))) : [emptyRow(6, 'No turns yet.')]));
  });

  const loadResult = () => fill(resultBox, async () => {
    let r = null;
    try {
      r = await api('GET', `${base}/result`);
    } catch (err) {
      if (err.status !== 404 && err.status !== 409) throw err;
    }
    if (signal.aborted) return;
    const ev = r && r.result;
    if (!ev) {
      resultBox.replaceChildren(h('p', { class: 'muted' }, 'No result yet.'));
      return;
    }
    const b = ev.body || {};
    resultBox.replaceChildren(
      h('p', { class: 'muted' }, `Event #${ev.seq}`, r.last_turn ? ` · turn ${r.last_turn.number ?? ''} ${r.last_turn.yield_reason || ''}` : ''),
      textBlock(typeof b.text === 'string' ? b.text : JSON.stringify(b, null, 2), 'text'));
  });

  const loadEgress = () => fill(egressBody, async () => {
    const [denied, misuse] = await Promise.all(['egress.denied', 'egress.token_misuse'].map((type) =>
      api('GET', `${base}/events${qs({ level: 'internal', type, limit: 1000 })}`)));
    if (signal.aborted) return;
    const events = [...(denied.data || []), ...(misuse.data || [])].sort((a, b) => a.seq - b.seq);
    egressBody.replaceChildren(...(events.length ? events.map((ev) => {
      const b = ev.body && typeof ev.body === 'object' ? ev.body : {};
      const { host, port, reason, ...rest } = b;
      const tripwire = ev.type === 'egress.token_misuse';
      return h('tr', { 'data-seq': ev.seq, 'data-type': ev.type, class: tripwire ? 'tripwire' : '' },
        h('td', null, `#${ev.seq}`),
        h('td', null, when(ev.ts)),
        h('td', null, tripwire ? badge('tripwire', 'failed') : badge('refusal', 'refusal')),
        h('td', null, h('code', null, dash(host))),
        h('td', null, dash(port)),
        h('td', null, dash(reason)),
        h('td', null, Object.keys(rest).length ? h('code', { class: 'small' }, JSON.stringify(rest)) : ''));
    }) : [emptyRow(7, 'No refusals or tripwires.')]));
  });

  const loadDestinations = () => fill(destBody, async () => {
    const list = await all(`${base}/destinations`);
    if (signal.aborted) return;
    destBody.replaceChildren(...(list.length ? list.map((d) => h('tr', { 'data-destination': d.id },
      h('td', null, h('code', null, d.url), h('div', { class: 'muted small' }, d.id)),
      h('td', null, d.level),
      h('td', null, d.types && d.types.length ? d.types.join(', ') : 'all'),
      h('td', null, d.enabled ? 'yes' : 'no'),
      h('td', null, d.has_secret ? 'signed' : 'unsigned'),
      h('td', null, `> #${d.created_after_seq}`),
      h('td', null, h('button', {
        type: 'button', class: 'delete danger',
        onclick: (e) => {
          if (!window.confirm(`Delete the destination ${d.url}?`)) return;
          busy(e.currentTarget, async () => {
            await api('DELETE', `${base}/destinations/${enc(d.id)}`);
            await loadDestinations();
          });
        },
      }, 'Delete')))) : [emptyRow(7, 'No destinations.')]));
  });

  const dlvRow = (d) => h('tr', { 'data-delivery': d.id, 'data-status': d.status },
    h('td', null, h('code', { class: 'small' }, d.id)),
    h('td', null, `#${d.event_seq}`),
    h('td', null, badge(d.status)),
    h('td', null, dash(d.attempts)),
    h('td', null, dash(d.response_code)),
    h('td', { class: 'err' }, d.error || ''),
    h('td', null, when(d.last_attempt_at)),
    h('td', null, d.status === 'failed' || d.status === 'dead_letter'
      ? h('button', {
        type: 'button', class: 'redeliver secondary',
        onclick: (e) => busy(e.currentTarget, async () => {
          const updated = await api('POST', `${base}/deliveries/${enc(d.id)}/redeliver`);
          const tr = dlvBody.querySelector(`tr[data-delivery="${CSS.escape(d.id)}"]`);
          if (updated && updated.id && tr) tr.replaceWith(dlvRow(updated));
          else await loadDeliveries();
        }),
      }, 'Redeliver')
      : ''));

  const loadDeliveries = (append = false) => fill(dlvBody, async () => {
    const page = await api('GET', `${base}/deliveries${qs({ limit: 100, cursor: append ? dlvNext : null })}`);
    if (signal.aborted) return;
    const rows = (page.data || []).map(dlvRow);
    dlvNext = page.next_cursor || null;
    more.hidden = !dlvNext;
    if (append) dlvBody.append(...rows);
    else dlvBody.replaceChildren(...(rows.length ? rows : [emptyRow(8, 'No deliveries.')]));
  });
  more.addEventListener('click', () => loadDeliveries(true));

  const destUrl = h('input', { id: 'destination-url', name: 'url', type: 'url', required: true, placeholder: 'https://…' });
  const destLevel = h('select', { id: 'destination-level', name: 'level' }, ['user', 'progress', 'internal'].map((l) => h('option', { value: l }, l)));
  const destSecret = h('input', { id: 'destination-secret', name: 'secret', type: 'password', autocomplete: 'off' });
  const destAdd = h('button', { type: 'submit' }, 'Add destination');
  const destForm = h('form', { id: 'new-destination', class: 'grid-form' },
    h('label', { for: 'destination-url' }, 'URL'), destUrl,
    h('label', { for: 'destination-level' }, 'Level'), destLevel,
    h('label', { for: 'destination-secret' }, 'Signing secret (optional)'), destSecret,
    h('div', { class: 'row' }, destAdd));
  destForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const req = { url: destUrl.value.trim(), level: destLevel.value };
    if (destSecret.value) req.secret = destSecret.value;
    destSecret.value = '';
    busy(destAdd, async () => {
      await api('POST', `${base}/destinations`, req);
      destUrl.value = '';
      await loadDestinations();
    });
  });

  let timer = null;
  let pending = new Set();
  const soon = (...what) => {
    what.forEach((w) => pending.add(w));
    clearTimeout(timer);
    timer = setTimeout(() => {
      const run = pending;
      pending = new Set();
      if (!signal.aborted) run.forEach((f) => f());
    }, 700);
  };
  signal.addEventListener('abort', () => clearTimeout(timer), { once: true });

  const panel = eventsPanel({
    path: `/console/api/v3${base}/events`,
    level: 'internal',
    signal,
    resume: () => status !== 'archived',
    onEvent: (ev) => {
      const t = String(ev.type || '');
      if (t.startsWith('turn.')) soon(loadSession, loadTurns, loadResult);
      else if (t === 'user.message') soon(loadSession);
      if (t === 'egress.denied' || t === 'egress.token_misuse') soon(loadEgress);
      if (t.startsWith('turn.') || t.startsWith('error.')) soon(loadDeliveries);
    },
    onFatal: (err) => (err.status === 401 ? expire(err) : showError(err)),
  });

  const refresh = (fn, label) => h('button', { type: 'button', class: 'secondary small-btn', 'aria-label': `Refresh ${label}`, onclick: safe(() => fn()) }, 'Refresh');
  const card = (title, fn, ...kids) => h('section', { class: 'card', 'aria-label': title },
    h('div', { class: 'head' }, h('h2', null, title), fn ? refresh(fn, title.toLowerCase()) : null), ...kids);

  header.append(
    facts,
    h('div', { class: 'row actions' }, cancel, archive,
      h('span', { class: 'sep' }),
      h('label', { for: 'token-ttl' }, 'Link lifetime'), ttl, mint),
    linkOut);

  main.append(
    back,
    h('section', { class: 'card' }, header),
    h('div', { class: 'cols' },
      h('div', null,
        card('Events', null, panel),
        h('section', { class: 'card' }, steerForm((text) => api('POST', `${base}/messages`, { text })))),
      h('div', null,
        card('Result', loadResult, resultBox),
        card('Turns', loadTurns, table({ id: 'turns' }, ['#', 'State', 'Started', 'Completed', 'Tokens', 'Error'], turnsBody)))),
    card('Egress', loadEgress,
      h('p', { class: 'muted' }, 'Refused connections and sealed-token tripwires.'),
      table({ id: 'egress' }, ['Seq', 'Time', 'Kind', 'Host', 'Port', 'Reason', 'Details'], egressBody)),
    card('Webhooks', () => { loadDestinations(); loadDeliveries(); },
      h('h3', null, 'Destinations'),
      table({ id: 'destinations' }, ['URL', 'Level', 'Types', 'Enabled', 'Signing', 'Events after', ''], destBody),
      destForm,
      h('h3', null, 'Deliveries'),
      table({ id: 'deliveries' }, ['Delivery', 'Event', 'Status', 'Attempts', 'Response', 'Error', 'Last attempt', ''], dlvBody),
      more));

  // Deliveries move on their own (retries): poll while the page is open.
  const poll = setInterval(() => { if (!document.hidden) loadDeliveries(); }, 15000);
  signal.addEventListener('abort', () => clearInterval(poll), { once: true });

  showSession(first);
  await Promise.all([loadTurns(), loadResult(), loadEgress(), loadDestinations(), loadDeliveries()]);
}
