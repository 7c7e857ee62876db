// The console shell: sign-in, the top bar, navigation (History API under /console/) and routing.

import { consoleSession, onExpired, setCsrf } from './api.js';
import { $, clearError, h, showError, whileDisabled } from './dom.js';
import { agentsPage } from './agents.js';
import { credentialsPage } from './credentials.js';
import { endUserPage, takeToken } from './enduser.js';
import { sessionPage } from './session.js';
import { sessionsPage } from './sessions.js';

const BASE = '/console/';
const HOME = '/console/sessions';
const END_USER = /^\/console\/s\/([^/]+)\/?$/;

// The end-user link carries its token in the fragment: take it and clean the address bar
// before anything else runs.
const endUserToken = END_USER.test(location.pathname) ? takeToken() : null;

const main = $('#main');
const top = $('#top');
let signedIn = false;
let page = null; // AbortController of the current page

// [path, page, the top bar link it belongs to]; captured groups are the page's arguments.
const ROUTES = [
  [/^\/console\/?$/, sessionsPage, HOME],
  [/^\/console\/sessions\/?$/, sessionsPage, HOME],
  [/^\/console\/sessions\/([^/]+)\/?$/, sessionPage, HOME],
  [/^\/console\/agents\/?$/, agentsPage, '/console/agents'],
  [/^\/console\/credentials\/?$/, credentialsPage, '/console/credentials'],
];

// Ends the current page (its streams and timers) and clears the screen for the next.
function newPage() {
  if (page) page.abort();
  page = new AbortController();
  clearError();
  main.replaceChildren();
  return page.signal;
}

function render() {
  const signal = newPage();
  if (!signedIn) {
    signInForm();
    return;
  }
  const route = ROUTES.find(([re]) => re.test(location.pathname));
  if (!route) {
    main.append(h('section', { class: 'card' }, h('h1', null, 'Page not found'),
      h('p', null, h('a', { href: HOME }, 'Go to the sessions'))));
    return;
  }
  const [re, view, nav] = route;
  for (const a of top.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const args = re.exec(location.pathname).slice(1).map(decodeURIComponent);
  Promise.resolve().then(() => view(main, signal, ...args)).catch(showError);
}

function navigate(url, replace = false) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
  window.scrollTo(0, 0);
}

function signedInAs(body) {
  signedIn = true;
  setCsrf(body.csrf_token);
  top.replaceChildren(
    h('a', { class: 'brand', href: HOME }, 'sealpod'),
    h('nav', { 'aria-label': 'Main' },
      h('a', { href: HOME }, 'Sessions'),
      h('a', { href: '/console/agents' }, 'Agents'),
      h('a', { href: '/console/credentials' }, 'Credentials')),
    h('span', { class: 'who' }, 'Namespace ', h('code', { id: 'namespace' }, body.namespace || '')),
    h('button', { type: 'button', id: 'sign-out', class: 'secondary', onclick: signOut }, 'Sign out'),
  );
  top.hidden = false;
}

function signedOut() {
  signedIn = false;
  setCsrf(null);
  top.hidden = true;
  top.replaceChildren();
}

function signInForm() {
  const input = h('input', { id: 'api-key', name: 'api_key', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'osb_…' });
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { id: 'sign-in', class: 'card narrow' },
    h('h1', null, 'sealpod console'),
    h('label', { for: 'api-key' }, 'Org API key'), input,
    h('p', { class: 'muted' }, 'The key is exchanged for a sign-in cookie; it is not stored in this browser.'),
    h('div', { class: 'row' }, button));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    whileDisabled(button, async () => {
      let body;
      try {
        body = await consoleSession('POST', { api_key: key });
      } finally {
        input.value = '';
      }
      if (!body || !body.signed_in) throw new Error('Sign-in failed');
      signedInAs(body);
      if (!ROUTES.some(([re]) => re.test(location.pathname))) history.replaceState(null, '', HOME);
      render();
    });
  });
  main.append(form);
  input.focus();
}

function signOut() {
  whileDisabled($('#sign-out'), async () => {
    try {
      await consoleSession('DELETE');
    } catch (err) {
      if (err.status !== 401) throw err;
    }
    signedOut();
    navigate(BASE, true);
  });
}

// Internal links change the page without a reload.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target instanceof Element ? e.target.closest('a[href]') : null;
  if (!a || (a.target && a.target !== '_self') || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(BASE)) return;
  if (/^\/console\/(assets|api|s)\//.test(url.pathname)) return;
  e.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
});

window.addEventListener('popstate', () => {
  if (!END_USER.test(location.pathname)) render();
});

onExpired(() => {
  if (!signedIn) return;
  signedOut();
  render();
  showError({ message: 'Your sign-in has expired. Sign in again.' });
});

async function boot() {
  const endUser = END_USER.exec(location.pathname);
  if (endUser) {
    endUserPage(main, newPage(), decodeURIComponent(endUser[1]), endUserToken);
    return;
  }
  let body;
  try {
    body = await consoleSession('GET');
  } catch (err) {
    main.replaceChildren(h('section', { class: 'card narrow' },
      h('p', null, 'The console could not reach the server.'),
      h('button', { type: 'button', onclick: () => { main.replaceChildren(h('p', { class: 'muted loading' }, 'Loading…')); boot(); } }, 'Try again')));
    showError(err);
    return;
  }
  if (body && body.signed_in) signedInAs(body);
  else signedOut();
  render();
}

boot();
