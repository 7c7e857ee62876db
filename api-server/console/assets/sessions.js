// The sessions list: filters by status and agent, paged by cursor.

import { api, enc, withQuery } from './api.js';
import { badge, dash, h, loadInto, showRows, table, turnOutcome, when } from './dom.js';
import { listAgents } from './agents.js';

const STATUSES = ['queued', 'running', 'awaiting_input', 'idle', 'failed', 'archived'];
const PAGE_SIZE = 25;

// The agent's name with its id beneath, or the id alone.
const agentCell = (id, name) => h('td', null, name || id, name ? h('div', { class: 'muted small' }, id) : null);

export async function sessionsPage(main, signal) {
  const status = h('select', { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'Any status'), STATUSES.map((s) => h('option', { value: s }, s)));
  const agent = h('select', { id: 'filter-agent', name: 'agent' }, h('option', { value: '' }, 'Any agent'));
  const body = h('tbody');
  const prev = h('button', { type: 'button', id: 'prev-page', class: 'secondary', disabled: true }, 'Previous');
  const next = h('button', { type: 'button', id: 'next-page', class: 'secondary', disabled: true }, 'Next');
  let earlierCursors = []; // the cursors of the pages before this one
  let cursor = null;
  let nextCursor = null;

  // Agent names, for the agent filter and column; without them both show ids.
  const agentNames = listAgents().then((agents) => {
    const names = new Map();
    for (const a of agents) {
      if (a.name) names.set(a.id, a.name);
      agent.append(h('option', { value: a.id }, a.name ? `${a.name} (${a.id})` : a.id));
    }
    return names;
  }, () => new Map());

  const load = () => loadInto(body, async () => {
    prev.disabled = true;
    next.disabled = true;
    const [page, names] = await Promise.all([
      api('GET', withQuery('/sessions', { status: status.value, agent: agent.value, limit: PAGE_SIZE, cursor })),
      agentNames,
    ]);
    if (signal.aborted) return;
    nextCursor = page.next_cursor || null;
    showRows(body, page.data || [], (s) => h('tr', { 'data-session': s.id, 'data-status': s.status },
      h('td', null, h('a', { href: `/console/sessions/${enc(s.id)}` }, s.id)),
      h('td', null, badge(s.status)),
      agentCell(s.agent_id, names.get(s.agent_id)),
      h('td', null, turnOutcome(s.last_turn)),
      h('td', null, dash(s.head)),
      h('td', null, when(s.created_at))), 'No sessions match.');
    prev.disabled = earlierCursors.length === 0;
    next.disabled = !nextCursor;
  });

  const fromFirstPage = () => {
    earlierCursors = [];
    cursor = null;
    load();
  };
  status.addEventListener('change', fromFirstPage);
  agent.addEventListener('change', fromFirstPage);
  next.addEventListener('click', () => {
    if (!nextCursor) return;
    earlierCursors.push(cursor);
    cursor = nextCursor;
    load();
  });
  prev.addEventListener('click', () => {
    if (!earlierCursors.length) return;
    cursor = earlierCursors.pop();
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
    table({ id: 'sessions' }, ['Session', 'Status', 'Agent', 'Last turn', 'Events', 'Created'], body),
    h('div', { class: 'row pager' }, prev, next)));
  await load();
}
