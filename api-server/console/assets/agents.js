// The agents page, and the agent list other pages name agents by.

import { listAll } from './api.js';
import { card, dash, h, loadInto, showRows, table, when } from './dom.js';

export const listAgents = () => listAll('/agents?limit=200');

const limitsText = (l) => {
  if (!l) return '—';
  const parts = [];
  if (l.tokens != null) parts.push(`${l.tokens} tokens`);
  if (l.turn_seconds != null) parts.push(`${l.turn_seconds} s per turn`);
  if (l.turns != null) parts.push(`${l.turns} turns`);
  return parts.length ? parts.join(', ') : 'none';
};

const agentRow = (a) => {
  const rev = a.active_revision || {};
  return h('tr', { 'data-agent': a.id },
    h('td', null, dash(a.name)),
    h('td', null, h('code', null, a.id)),
    h('td', null, dash(a.model)),
    h('td', null, dash(a.runtime)),
    h('td', null, `#${rev.number ?? a.revision}`, rev.id ? h('div', { class: 'muted small' }, rev.id) : null),
    h('td', null, a.credential_id == null ? 'org default' : a.credential_id),
    h('td', null, limitsText(a.limits)),
    h('td', null, when(a.updated_at || a.created_at)));
};

export async function agentsPage(main, signal) {
  const body = h('tbody');
  const load = () => loadInto(body, async () => {
    const agents = await listAgents();
    if (!signal.aborted) showRows(body, agents, agentRow, 'No agents yet.');
  });
  main.append(card(h('h1', null, 'Agents'), load,
    table({ id: 'agents' }, ['Name', 'Id', 'Model', 'Runtime', 'Active revision', 'Credential', 'Limits', 'Updated'], body)));
  await load();
}
