// The end-user view (/console/s/{id}#token=…): one session's events and a steer box, with a
// client token that lives in memory only. It makes no console (admin) calls.

import { bearer, enc } from './api.js';
import { card, h } from './dom.js';
import { eventsPanel, steerForm } from './events.js';

// Reads the token from the fragment and removes it from the address bar at once.
export function takeToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  history.replaceState(null, '', location.pathname);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return null;
  }
}

export function endUserPage(main, signal, id, token) {
  const root = h('div', { id: 'end-user', class: 'end-user' });
  main.append(root);
  root.append(h('h1', null, 'Session ', h('code', null, id)));
  if (!token) {
    root.append(h('section', { class: 'card', id: 'no-token' },
      h('p', null, 'This page needs its link: open the link you were given again.'),
      h('p', { class: 'muted' }, 'For safety the access token is kept only while the page is open, so a reload or a bookmark does not carry it.')));
    return;
  }
  // Why the stream stopped, when it did.
  const stopped = h('p', { class: 'notice', hidden: true, role: 'status' });
  const stop = (text) => {
    stopped.textContent = text;
    stopped.hidden = false;
  };
  const panel = eventsPanel({
    path: `/v3/sessions/${enc(id)}/events`,
    headers: { Authorization: 'Bearer ' + token },
    level: 'user',
    signal,
    onFatal: (err) => {
      if (err.status === 401) stop('This link has expired or was revoked. Ask for a new link.');
      else if (err.status === 403) stop('This link does not allow reading this session.');
      else if (err.status === 404) stop('This session does not exist.');
      else stop(err.message);
    },
  });
  const steer = steerForm((text) => bearer(token, 'POST', `/sessions/${enc(id)}/messages`, { text }));
  root.append(stopped,
    card(h('h2', null, 'Conversation'), null, panel),
    h('section', { class: 'card' }, steer));
}
