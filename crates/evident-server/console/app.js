// The console's shell: session, sign-in (a key, or a one-time link), navigation by URL fragment
// (so a search's URL can be shared), and sign-out. The page hides what the role may not do; the
// server refuses it anyway.
import { call, get, may, session } from './api.js';
import { h, show, status, field, route } from './dom.js';
import { searchPage, eventPage, customerPage, recordPage } from './views.js';
import { findingsPage, findingPage, rulesPage, healthPage } from './views-audit.js';
import { keysPage, tenantsPage, privacyPage } from './views-admin.js';
import { insightPage } from './views-insight.js';

const NAV = [
  ['search', 'Search', 'read'], ['findings', 'Findings', 'read'], ['health', 'Log health', 'read'],
  ['insight', 'Insight', 'read'], ['privacy', 'Privacy', 'privacy'], ['keys', 'Keys', 'admin'], ['tenants', 'Tenants', 'admin'],
];

const ROUTES = {
  search: (_, q) => searchPage(q),
  event: ([id], q) => eventPage(id, q),
  customer: ([subject], q) => customerPage(subject, q),
  record: ([type, id], q) => recordPage(type, id, q),
  findings: (_, q) => findingsPage(q),
  finding: ([id]) => findingPage(id),
  rules: () => rulesPage(),
  health: (_, q) => healthPage(q),
  keys: () => keysPage(),
  tenants: () => tenantsPage(),
  privacy: () => privacyPage(),
  insight: (_, q) => insightPage(q),
};

function renderNav() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  if (!session.info) { nav.replaceChildren(); who.replaceChildren(); return; }
  const current = location.hash.split(/[/?]/)[1] || 'search';
  nav.replaceChildren(h('ul', {}, NAV.filter(([, , need]) => may(need)).map(([name, label]) =>
    h('li', {}, h('a', { href: route(name), 'aria-current': current === name ? 'page' : null }, label)))));
  who.replaceChildren(h('span', { class: 'muted' }, `${session.info.role} · ${session.info.tenant} · key ${session.info.key_id}`),
    h('button', { type: 'button', id: 'sign-out', onclick: signOut }, 'Sign out'));
}

async function signOut() {
  try { await call('DELETE', '/console/session'); } catch { /* the session is gone either way */ }
  session.info = null;
  location.hash = '#/signed-out';
}

function signInPage(message) {
  renderNav();
  const key = h('input', { id: 'key', name: 'key', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const out = h('div', { 'aria-live': 'polite' }, message ? status(message) : null);
  const form = h('form', { class: 'card signin', onsubmit: async (ev) => {
    ev.preventDefault();
    await signIn({ key: key.value.trim() }, out);
  } }, h('div', { class: 'field' }, h('label', { for: 'key' }, 'API key'), key),
  h('button', { type: 'submit' }, 'Sign in'),
  h('p', { class: 'muted' }, 'Or run ', h('code', {}, 'evident console-link'), ' for a one-time sign-in link.'));
  show('Sign in to Evident', form, out);
}

async function signIn(body, out) {
  try {
    session.info = await call('POST', '/console/session', { body });
    const back = sessionStorage.getItem('evident.after-signin');
    sessionStorage.removeItem('evident.after-signin');
    location.hash = back || route('search');
    await render();
  } catch (err) {
    out.replaceChildren(status(`Not signed in: ${err.message}`, 'error'));
  }
}

async function render() {
  const [path, queryText] = location.hash.replace(/^#\/?/, '').split('?');
  const parts = path.split('/').map(decodeURIComponent);
  const query = new URLSearchParams(queryText || '');
  if (parts[0] === 'link' && parts[1]) {
    const out = h('div', { 'aria-live': 'polite' });
    show('Signing in…', out);
    history.replaceState(null, '', '#/');
    await signIn({ link: parts[1] }, out);
    return;
  }
  if (!session.info) {
    try { session.info = await get('/console/session'); } catch { session.info = null; }
  }
  if (!session.info) {
    if (parts[0] && parts[0] !== 'signed-out') sessionStorage.setItem('evident.after-signin', location.hash);
    signInPage(parts[0] === 'signed-out' ? 'You are signed out.' : null);
    return;
  }
  renderNav();
  const page = ROUTES[parts[0]] || ROUTES.search;
  try { await page(parts.slice(1), query); } catch (err) { show('Error', status(err.message, 'error')); }
}

window.addEventListener('hashchange', render);
window.addEventListener('evident:signed-out', () => { session.info = null; });
render();
export { field };
