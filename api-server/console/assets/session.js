// One session's page: its header (facts, cancel, archive, client link), result, turns, egress
// and webhooks, kept current by its live event stream.

import { api, enc, expire, withQuery } from './api.js';
import {
  badge, card, dash, errorText, h, loadInto, setChildren, showError, showRows, table, turnOutcome, when, whileDisabled,
} from './dom.js';
import { EGRESS_TYPES, bodyOf, eventsPanel, steerForm, textBlock } from './events.js';
import { webhooksCard } from './webhooks.js';

const TTLS = [[900, '15 minutes'], [3600, '1 hour'], [28800, '8 hours'], [86400, '24 hours']];
const REFRESH_DELAY_MS = 700;

// The end-user link of a minted client token, shown once, with a Copy button.
function clientLink(link, expiresAt) {
  const field = h('input', { id: 'client-link', type: 'text', readonly: true, value: link, 'aria-label': 'End-user link', class: 'mono' });
  const copied = h('span', { class: 'muted', 'aria-live': 'polite' });
  const copy = () => {
    field.select();
    const say = (text) => { copied.textContent = text; };
    const manual = () => say('Select the text and copy it.');
    if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(field.value).then(() => say('Copied.'), manual);
    else manual();
  };
  return [
    h('label', { for: 'client-link' }, 'End-user link (read + steer, expires ', when(expiresAt), ')'),
    h('div', { class: 'row' }, field, h('button', { type: 'button', id: 'copy-link', class: 'secondary', onclick: copy }, 'Copy'), copied),
    h('p', { class: 'notice' }, 'This link is shown once. Copy it now; anyone with it can read and steer this session until it expires.'),
  ];
}

// The header: the session's facts and what can be done to it.
function headerCard(base, id, signal) {
  let status = null;
  const facts = h('dl', { class: 'facts' });
  const linkBox = h('div', { class: 'mint-out' });
  const ttl = h('select', { id: 'token-ttl', name: 'ttl' },
    TTLS.map(([seconds, text]) => h('option', { value: seconds, selected: seconds === 3600 }, text)));
  const cancel = h('button', { type: 'button', id: 'cancel', class: 'secondary' }, 'Cancel turn');
  const archive = h('button', { type: 'button', id: 'archive', class: 'danger' }, 'Archive');
  const mint = h('button', { type: 'button', id: 'mint-token' }, 'Mint client token');

  const show = (s) => {
    status = s.status;
    setChildren(facts,
      h('dt', null, 'Status'), h('dd', { id: 'session-status', 'data-status': s.status }, badge(s.status)),
      h('dt', null, 'Agent'), h('dd', null, h('code', null, s.agent_id), s.agent_snapshot ? ` · ${s.agent_snapshot.model} · revision ${s.agent_snapshot.revision}` : ''),
      h('dt', null, 'Last turn'), h('dd', null, turnOutcome(s.last_turn)),
      h('dt', null, 'Events'), h('dd', null, dash(s.head)),
      h('dt', null, 'Created'), h('dd', null, when(s.created_at)),
      s.key ? [h('dt', null, 'Key'), h('dd', null, h('code', null, s.key))] : null,
      s.metadata != null ? [h('dt', null, 'Metadata'), h('dd', null, h('code', null, JSON.stringify(s.metadata)))] : null);
    for (const button of [cancel, archive, mint]) button.disabled = s.status === 'archived';
  };
  const load = () => loadInto(facts, async () => {
    const s = await api('GET', base);
    if (!signal.aborted) show(s);
  });

  cancel.addEventListener('click', () => whileDisabled(cancel, async () => show(await api('POST', `${base}/cancel`))));
  archive.addEventListener('click', () => {
    if (!window.confirm('Archive this session? It becomes read-only; its log is kept.')) return;
    whileDisabled(archive, async () => show(await api('POST', `${base}/archive`)));
  });
  mint.addEventListener('click', () => whileDisabled(mint, async () => {
    const t = await api('POST', `${base}/client-tokens`, { scopes: ['read', 'steer'], ttl: Number(ttl.value) });
    setChildren(linkBox, clientLink(`${location.origin}/console/s/${enc(id)}#token=${enc(t.token)}`, t.expires_at));
  }));

  const section = h('section', { class: 'card' },
    h('div', { class: 'session-head' }, h('h1', null, 'Session ', h('code', null, id)),
      facts,
      h('div', { class: 'row actions' }, cancel, archive,
        h('span', { class: 'sep' }),
        h('label', { for: 'token-ttl' }, 'Link lifetime'), ttl, mint),
      linkBox));
  return { section, show, load, archived: () => status === 'archived' };
}

// The last turn's result.
function resultCard(base, signal) {
  const box = h('div', { id: 'result' });
  const load = () => loadInto(box, async () => {
    const { last_turn: turn, result: ev } = await api('GET', `${base}/result`);
    if (signal.aborted) return;
    if (!ev) {
      setChildren(box, h('p', { class: 'muted' }, 'No result yet.'));
      return;
    }
    const body = bodyOf(ev);
    setChildren(box,
      h('p', { class: 'muted' }, `Event #${ev.seq}`, turn ? ` · turn ${turn.number} ${turn.yield_reason || ''}` : ''),
      textBlock(typeof body.text === 'string' ? body.text : body, 'text'));
  });
  return { section: card(h('h2', null, 'Result'), load, box), load };
}

function turnsCard(base, signal) {
  const body = h('tbody');
  const load = () => loadInto(body, async () => {
    const page = await api('GET', `${base}/turns?limit=50`);
    if (signal.aborted) return;
    showRows(body, page.data || [], (t) => h('tr', { 'data-turn': t.id, 'data-state': t.state },
      h('td', null, dash(t.number)),
      h('td', null, turnOutcome(t)),
      h('td', null, when(t.started_at)),
      h('td', null, when(t.completed_at)),
      h('td', null, t.usage && t.usage.tokens != null ? String(t.usage.tokens) : '—'),
      h('td', { class: 'err' }, t.error ? errorText(t.error) : '')), 'No turns yet.');
  });
  const section = card(h('h2', null, 'Turns'), load,
    table({ id: 'turns' }, ['#', 'State', 'Started', 'Completed', 'Tokens', 'Error'], body));
  return { section, load };
}

// Refused connections (egress.denied) and sealed-token tripwires (egress.token_misuse).
function egressCard(base, signal) {
  const body = h('tbody');
  const row = (ev) => {
    const { host, port, reason, ...rest } = bodyOf(ev);
    const tripwire = ev.type === 'egress.token_misuse';
    return h('tr', { 'data-seq': ev.seq, 'data-type': ev.type, class: tripwire ? 'tripwire' : '' },
      h('td', null, `#${ev.seq}`),
      h('td', null, when(ev.ts)),
      h('td', null, tripwire ? badge('tripwire', 'failed') : badge('refusal', 'refusal')),
      h('td', null, h('code', null, dash(host))),
      h('td', null, dash(port)),
      h('td', null, dash(reason)),
      h('td', null, Object.keys(rest).length ? h('code', { class: 'small' }, JSON.stringify(rest)) : ''));
  };
  const load = () => loadInto(body, async () => {
    const pages = await Promise.all(EGRESS_TYPES.map((type) =>
      api('GET', withQuery(`${base}/events`, { level: 'internal', type, limit: 1000 }))));
    if (signal.aborted) return;
    const events = pages.flatMap((p) => p.data || []).sort((a, b) => a.seq - b.seq);
    showRows(body, events, row, 'No refusals or tripwires.');
  });
  const section = card(h('h2', null, 'Egress'), load,
    h('p', { class: 'muted' }, 'Refused connections and sealed-token tripwires.'),
    table({ id: 'egress' }, ['Seq', 'Time', 'Kind', 'Host', 'Port', 'Reason', 'Details'], body));
  return { section, load };
}

// Runs the loads asked for within `delay` of each other once, after the last ask.
function debounced(signal, delay) {
  let timer = null;
  let pending = new Set();
  signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  return (...loads) => {
    for (const load of loads) pending.add(load);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const due = pending;
      pending = new Set();
      if (!signal.aborted) due.forEach((load) => load());
    }, delay);
  };
}

export async function sessionPage(main, signal, id) {
  const base = `/sessions/${enc(id)}`;
  const back = h('p', null, h('a', { href: '/console/sessions' }, '← Sessions'));
  let initial;
  try {
    initial = await api('GET', base);
  } catch (err) {
    if (signal.aborted) return;
    main.append(back, h('section', { class: 'card' }, h('h1', null, 'Session ', h('code', null, id)),
      h('p', { id: 'session-missing' }, err.status === 404 ? 'This session does not exist.' : 'The session could not be loaded.')));
    throw err;
  }
  if (signal.aborted) return;

  const header = headerCard(base, id, signal);
  const result = resultCard(base, signal);
  const turns = turnsCard(base, signal);
  const egress = egressCard(base, signal);
  const webhooks = webhooksCard(base, signal);

  // What the stream shows moves the other panels. Events up to the head the page opened at
  // (the stream replays them) are already in what it loaded.
  const refreshSoon = debounced(signal, REFRESH_DELAY_MS);
  const onEvent = (ev) => {
    if (ev.seq <= initial.head) return;
    const type = String(ev.type || '');
    if (type === 'turn.started') refreshSoon(header.load, turns.load);
    else if (type.startsWith('turn.')) refreshSoon(header.load, turns.load, result.load); // completed or failed
    else if (type === 'user.message') refreshSoon(header.load);
    if (EGRESS_TYPES.includes(type)) refreshSoon(egress.load);
    if (type.startsWith('turn.') || type.startsWith('error.')) refreshSoon(webhooks.loadDeliveries);
  };
  const events = eventsPanel({
    path: `/console/api/v3${base}/events`,
    level: 'internal',
    signal,
    resume: () => !header.archived(),
    onEvent,
    onFatal: (err) => (err.status === 401 ? expire(err) : showError(err)),
  });

  main.append(
    back,
    header.section,
    h('div', { class: 'cols' },
      h('div', null,
        card(h('h2', null, 'Events'), null, events),
        h('section', { class: 'card' }, steerForm((text) => api('POST', `${base}/messages`, { text })))),
      h('div', null, result.section, turns.section)),
    egress.section,
    webhooks.section);

  header.show(initial);
  await Promise.all([result.load(), turns.load(), egress.load(), webhooks.load()]);
}
