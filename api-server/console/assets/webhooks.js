// A session's webhooks: its destinations (add, delete) and their deliveries (redeliver, paged).

import { api, enc, listAll, withQuery } from './api.js';
import { badge, card, dash, h, loadInto, showRows, table, when, whileDisabled } from './dom.js';
import { LEVELS } from './events.js';

// base: the session's API path (/sessions/{id}). Returns the card, `load` (both lists) and
// `loadDeliveries` (the first page again).
export function webhooksCard(base, signal) {
  const destinationsBody = h('tbody');
  const deliveriesBody = h('tbody');
  const moreDeliveries = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');
  let deliveriesCursor = null;

  const loadDestinations = () => loadInto(destinationsBody, async () => {
    const list = await listAll(`${base}/destinations`);
    if (!signal.aborted) showRows(destinationsBody, list, destinationRow, 'No destinations.');
  });

  const destinationRow = (d) => h('tr', { 'data-destination': d.id },
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
        whileDisabled(e.currentTarget, async () => {
          await api('DELETE', `${base}/destinations/${enc(d.id)}`);
          await loadDestinations();
        });
      },
    }, 'Delete')));

  const loadDeliveries = (more = false) => loadInto(deliveriesBody, async () => {
    const page = await api('GET', withQuery(`${base}/deliveries`, { limit: 100, cursor: more ? deliveriesCursor : null }));
    if (signal.aborted) return;
    const rows = page.data || [];
    deliveriesCursor = page.next_cursor || null;
    moreDeliveries.hidden = !deliveriesCursor;
    if (more) deliveriesBody.append(...rows.map(deliveryRow));
    else showRows(deliveriesBody, rows, deliveryRow, 'No deliveries.');
  });
  moreDeliveries.addEventListener('click', () => loadDeliveries(true));

  const redeliver = (d, button) => whileDisabled(button, async () => {
    const updated = await api('POST', `${base}/deliveries/${enc(d.id)}/redeliver`);
    const tr = deliveriesBody.querySelector(`tr[data-delivery="${CSS.escape(d.id)}"]`);
    if (updated && updated.id && tr) tr.replaceWith(deliveryRow(updated));
    else await loadDeliveries();
  });

  const deliveryRow = (d) => h('tr', { 'data-delivery': d.id, 'data-status': d.status },
    h('td', null, h('code', { class: 'small' }, d.id)),
    h('td', null, `#${d.event_seq}`),
    h('td', null, badge(d.status)),
    h('td', null, dash(d.attempts)),
    h('td', null, dash(d.response_code)),
    h('td', { class: 'err' }, d.error || ''),
    h('td', null, when(d.last_attempt_at)),
    h('td', null, d.status === 'failed' || d.status === 'dead_letter'
      ? h('button', { type: 'button', class: 'redeliver secondary', onclick: (e) => redeliver(d, e.currentTarget) }, 'Redeliver')
      : ''));

  const url = h('input', { id: 'destination-url', name: 'url', type: 'url', required: true, placeholder: 'https://…' });
  const level = h('select', { id: 'destination-level', name: 'level' }, LEVELS.map((l) => h('option', { value: l }, l)));
  const secret = h('input', { id: 'destination-secret', name: 'secret', type: 'password', autocomplete: 'off' });
  const add = h('button', { type: 'submit' }, 'Add destination');
  const form = h('form', { id: 'new-destination', class: 'grid-form' },
    h('label', { for: 'destination-url' }, 'URL'), url,
    h('label', { for: 'destination-level' }, 'Level'), level,
    h('label', { for: 'destination-secret' }, 'Signing secret (optional)'), secret,
    h('div', { class: 'row' }, add));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const req = { url: url.value.trim(), level: level.value };
    if (secret.value) req.secret = secret.value;
    secret.value = '';
    whileDisabled(add, async () => {
      await api('POST', `${base}/destinations`, req);
      url.value = '';
      await loadDestinations();
    });
  });

  // Deliveries move on their own (retries): poll while the page is open.
  const poll = setInterval(() => { if (!document.hidden) loadDeliveries(); }, 15000);
  signal.addEventListener('abort', () => clearInterval(poll), { once: true });

  const load = () => Promise.all([loadDestinations(), loadDeliveries()]);
  const section = card(h('h2', null, 'Webhooks'), load,
    h('h3', null, 'Destinations'),
    table({ id: 'destinations' }, ['URL', 'Level', 'Types', 'Enabled', 'Signing', 'Events after', ''], destinationsBody),
    form,
    h('h3', null, 'Deliveries'),
    table({ id: 'deliveries' }, ['Delivery', 'Event', 'Status', 'Attempts', 'Response', 'Error', 'Last attempt', ''], deliveriesBody),
    moreDeliveries);
  return { section, load, loadDeliveries };
}
