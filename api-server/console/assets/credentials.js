// The credentials page: model provider keys, write-only (only their last four characters show).

import { api, enc, listAll } from './api.js';
import { badge, card, dash, h, loadInto, showRows, table, when, whileDisabled } from './dom.js';

export async function credentialsPage(main, signal) {
  const body = h('tbody');
  const load = () => loadInto(body, async () => {
    const list = await listAll('/credentials');
    if (!signal.aborted) showRows(body, list, row, 'No credentials yet.');
  });
  // Runs a change, then shows the list as it now is.
  const change = (button, work) => whileDisabled(button, async () => {
    await work();
    await load();
  });

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
    change(create, async () => {
      await api('POST', '/credentials', req);
      name.value = '';
      isDefault.checked = false;
    });
  });

  const row = (c) => {
    const label = c.name || c.id;
    const rotateKey = h('input', { class: 'rotate-key', type: 'password', autocomplete: 'off', required: true, placeholder: 'New key', 'aria-label': 'New key' });
    const rotateSave = h('button', { type: 'submit' }, 'Save key');
    const rotateForm = h('form', { class: 'rotate-form inline', hidden: true },
      rotateKey, rotateSave,
      h('button', { type: 'button', class: 'secondary', onclick: () => { rotateKey.value = ''; rotateForm.hidden = true; } }, 'Cancel'));
    rotateForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const value = rotateKey.value;
      rotateKey.value = '';
      change(rotateSave, () => api('PATCH', `/credentials/${enc(c.id)}`, { key: value }));
    });
    const toggleRotate = () => {
      rotateForm.hidden = !rotateForm.hidden;
      if (!rotateForm.hidden) rotateKey.focus();
    };
    return h('tr', { 'data-credential': c.id, 'data-default': String(!!c.is_default) },
      h('td', null, dash(c.name), h('div', null, h('code', { class: 'small' }, c.id))),
      h('td', null, c.provider),
      h('td', null, h('code', { class: 'last4' }, c.last4 ? `…${c.last4}` : '—')),
      h('td', null, c.is_default ? badge('default', 'default') : ''),
      h('td', null, dash(c.version)),
      h('td', null, when(c.created_at)),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'rotate secondary', 'aria-label': `Rotate ${label}`, onclick: toggleRotate }, 'Rotate'),
        h('button', {
          type: 'button', class: 'set-default secondary', disabled: c.is_default,
          onclick: (e) => change(e.currentTarget, () => api('PUT', '/credentials/default', { credential: c.id })),
        }, 'Set default'),
        h('button', {
          type: 'button', class: 'delete danger',
          onclick: (e) => {
            if (window.confirm(`Delete credential ${label}? Agents pinned to it stop working.`)) {
              change(e.currentTarget, () => api('DELETE', `/credentials/${enc(c.id)}`));
            }
          },
        }, 'Delete'),
        rotateForm));
  };

  main.append(
    card(h('h1', null, 'Credentials'), load,
      h('p', { class: 'muted' }, 'Model provider keys are write-only: only their last four characters are shown.'),
      table({ id: 'credentials' }, ['Name', 'Provider', 'Key', 'Default', 'Version', 'Created', 'Actions'], body)),
    h('section', { class: 'card' }, h('h2', null, 'Add a credential'), form));
  await load();
}
