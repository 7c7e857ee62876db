// Agents and credentials.

import { all, api } from './api.js';
import { badge, busy, dash, emptyRow, enc, fill, h, safe, table, when } from './dom.js';

const limitsText = (l) => {
  if (!l) return '—';
  const parts = [];
  if (l.tokens != null) parts.push(`${l.tokens} tokens`);
  if (l.turn_seconds != null) parts.push(`${l.turn_seconds} s per turn`);
  if (l.turns != null) parts.push(`${l.turns} turns`);
  return parts.length ? parts.join(', ') : 'none';
};

export async function agentsPage(main, signal) {
  const body = h('tbody');
  const refresh = h('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Refresh');
  main.append(h('section', { class: 'card' },
    h('div', { class: 'head' }, h('h1', null, 'Agents'), refresh),
    table({ id: 'agents' }, ['Name', 'Id', 'Model', 'Runtime', 'Active revision', 'Credential', 'Limits', 'Updated'], body)));
  const load = () => fill(body, async () => {
    const agents = await all('/agents?limit=200');
    if (signal.aborted) return;
    body.replaceChildren(...(agents.length ? agents.map((a) => {
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
    }) : [emptyRow(8, 'No agents yet.')]));
  });
  await load();
}

export async function credentialsPage(main, signal) {
  const body = h('tbody');
  const provider = h('select', { id: 'credential-provider', name: 'provider' },
    h('option', { value: 'anthropic' }, 'anthropic'), h('option', { value: 'openai' }, 'openai'));
  const key = h('input', { id: 'credential-key', name: 'key', type: 'password', autocomplete: 'off', required: true });
  const name = h('input', { id: 'credential-name', name: 'name', type: 'text', autocomplete: 'off' });
  const isDefault = h('input', { id: 'credential-default', name: 'is_default', type: 'checkbox' });
  const create = h('button', { type: 'submit' }, 'Add credential');
  const form = h('form', { id: 'new-credential', class: 'grid-form' },
    h('label', { for: 'credential-provider' }, 'Provider'), provider,
    h('label', { for: 'credential-key' }, 'Key'), key,
    h('label', { for: 'credential-name' }, 'Name (optional)'), name,
    h('label', { for: 'credential-default', class: 'check' }, isDefault, ' Make it the default for its provider'),
    h('div', { class: 'row' }, create));

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const req = { provider: provider.value, key: key.value };
    if (name.value.trim()) req.name = name.value.trim();
    if (isDefault.checked) req.is_default = true;
    key.value = '';
    busy(create, async () => {
      await api('POST', '/credentials', req);
      name.value = '';
      isDefault.checked = false;
      await load();
    });
  });

  const row = (c) => {
    const rotateKey = h('input', { class: 'rotate-key', type: 'password', autocomplete: 'off', required: true, placeholder: 'New key', 'aria-label': 'New key' });
    const rotateBtn = h('button', { type: 'submit' }, 'Save key');
    const rotateForm = h('form', { class: 'rotate-form inline', hidden: true },
      rotateKey, rotateBtn,
      h('button', { type: 'button', class: 'secondary', onclick: () => { rotateKey.value = ''; rotateForm.hidden = true; } }, 'Cancel'));
    rotateForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const value = rotateKey.value;
      rotateKey.value = '';
      busy(rotateBtn, async () => {
        await api('PATCH', `/credentials/${enc(c.id)}`, { key: value });
        await load();
      });
    });
    return h('tr', { 'data-credential': c.id, 'data-default': String(!!c.is_default) },
      h('td', null, dash(c.name), h('div', null, h('code', { class: 'small' }, c.id))),
      h('td', null, c.provider),
      h('td', null, h('code', { class: 'last4' }, c.last4 ? `…${c.last4}` : '—')),
      h('td', null, c.is_default ? badge('default', 'default') : ''),
      h('td', null, dash(c.version)),
      h('td', null, when(c.created_at)),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'rotate secondary', 'aria-label': `Rotate ${c.name || c.id}`, onclick: () => { rotateForm.hidden = !rotateForm.hidden; if (!rotateForm.hidden) rotateKey.focus(); } }, 'Rotate'),
        h('button', {
          type: 'button', class: 'set-default secondary', disabled: c.is_default,
          onclick: (e) => busy(e.currentTarget, async () => {
            await api('PUT', '/credentials/default', { credential: c.id });
            await load();
          }),
        }, 'Set default'),
        h('button', {
          type: 'button', class: 'delete danger',
          onclick: (e) => {
            if (!window.confirm(`Delete credential ${c.name || c.id}? Agents pinned to it stop working.`)) return;
            busy(e.currentTarget, async () => {
              await api('DELETE', `/credentials/${enc(c.id)}`);
              await load();
            });
          },
        }, 'Delete'),
        rotateForm));
  };

  const load = () => fill(body, async () => {
    const list = await all('/credentials');
    if (signal.aborted) return;
    body.replaceChildren(...(list.length ? list.map(row) : [emptyRow(7, 'No credentials yet.')]));
  });

  main.append(
    h('section', { class: 'card' },
      h('div', { class: 'head' }, h('h1', null, 'Credentials'),
        h('button', { type: 'button', class: 'secondary', onclick: safe(() => load()) }, 'Refresh')),
      h('p', { class: 'muted' }, 'Model provider keys are write-only: only their last four characters are shown.'),
      table({ id: 'credentials' }, ['Name', 'Provider', 'Key', 'Default', 'Version', 'Created', 'Actions'], body)),
    h('section', { class: 'card' }, h('h2', null, 'Add a credential'), form));
  await load();
}
