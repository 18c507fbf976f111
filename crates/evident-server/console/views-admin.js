// Administration: tenants, keys (a new key shown once, with a copy button; revoke), and the
// privacy workflows: erasure, legal holds, subject reports.
import { get, post, del, may, session } from './api.js';
import { h, when, show, status, field, table } from './dom.js';

export async function keysPage() {
  const main = show('API keys');
  const out = h('div', { 'aria-live': 'polite', id: 'key-out' });
  const role = h('select', { id: 'role', name: 'role' }, ['reader', 'investigator', 'auditor', 'privacy', 'producer', 'admin'].map((r) => h('option', { value: r }, r)));
  const form = h('form', { class: 'card', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const made = await post('/v1/keys', { role: role.value, label: form.querySelector('[name=label]').value || undefined });
      const code = h('code', { id: 'new-key' }, made.key);
      out.replaceChildren(h('div', { class: 'status info', role: 'status' }, h('p', {}, `Key ${made.key_id} (${made.role}) created. It is shown this once:`), code, ' ',
        h('button', { type: 'button', onclick: () => navigator.clipboard.writeText(made.key).then(() => { out.append(status('Copied.')); }) }, 'Copy key')));
      await listKeys(list);
    } catch (err) { out.replaceChildren(status(`Not created: ${err.message}`, 'error')); }
  } }, h('h2', {}, 'Create a key'), h('div', { class: 'field' }, h('label', { for: 'role' }, 'Role'), role),
  field('Label', { name: 'label', maxlength: 200 }), h('button', { type: 'submit' }, 'Create key'));
  const list = h('div', {});
  main.append(form, out, list);
  await listKeys(list);
}

async function listKeys(list) {
  const keys = await get('/v1/keys');
  list.replaceChildren(table('Keys of this tenant', ['Key id', 'Role', 'Label', 'Created', 'Revoked', ''], keys.keys.map((k) => [
    h('code', {}, k.key_id), k.role, k.label || '-', when(k.created_at), k.revoked_at ? when(k.revoked_at) : '-',
    k.revoked_at || k.key_id === session.info.key_id ? '' : h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm(`Revoke key ${k.key_id}? Its holders lose access at once.`)) return;
      try { await del(`/v1/keys/${k.key_id}`); await listKeys(list); } catch (err) { list.prepend(status(`Not revoked: ${err.message}`, 'error')); }
    } }, `Revoke ${k.key_id}`)])));
}

export async function tenantsPage() {
  const main = show('Tenants');
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const made = await post('/v1/tenants', { id: form.querySelector('[name=tenant]').value.trim() });
      out.replaceChildren(status(`Tenant ${made.id} ${made.created ? 'created' : 'exists already'} (log ${made.origin}).`));
      await listTenants(list);
    } catch (err) { out.replaceChildren(status(`Not created: ${err.message}`, 'error')); }
  } }, h('h2', {}, 'Create a tenant'), field('Tenant id', { name: 'tenant', required: true, pattern: '[a-z0-9][a-z0-9-]{0,62}' }), h('button', { type: 'submit' }, 'Create tenant'));
  const list = h('div', {});
  main.append(session.info.global ? form : status('Only the global admin key creates tenants.'), out, list);
  await listTenants(list);
}

async function listTenants(list) {
  const answer = await get('/v1/tenants');
  list.replaceChildren(table('Tenants', ['Tenant'], answer.tenants.map((t) => [t])));
}

export async function privacyPage() {
  const main = show('Privacy');
  const out = h('div', { 'aria-live': 'polite', id: 'privacy-out' });
  const erase = h('form', { class: 'card', onsubmit: async (ev) => {
    ev.preventDefault();
    const value = (name) => erase.querySelector(`[name=${name}]`).value.trim();
    if (!confirm(`Erase ${value('subject')}? Its personal values become unreadable everywhere; this cannot be undone.`)) return;
    try {
      const done = await post(`/v1/subjects/${encodeURIComponent(value('subject'))}/erasure`, { reason: value('reason'), reference: value('reference') });
      out.replaceChildren(status(`Erased: ${JSON.stringify(done)}`));
    } catch (err) { out.replaceChildren(status(`Not erased: ${err.message}`, 'error')); }
  } }, h('h2', {}, 'Erasure request'), field('Customer (subject)', { name: 'subject', required: true }),
  field('Reason (the legal ground)', { name: 'reason', required: true, maxlength: 2000 }), field('Reference (ticket or case)', { name: 'reference', required: true, maxlength: 256 }),
  h('button', { type: 'submit', class: 'danger' }, 'Erase'));
  const hold = h('form', { class: 'card', onsubmit: async (ev) => {
    ev.preventDefault();
    const value = (name) => hold.querySelector(`[name=${name}]`).value.trim();
    try {
      await post('/v1/holds', { subject: value('hold-subject'), reason: value('hold-reason'), reference: value('hold-reference') });
      out.replaceChildren(status('Hold created.'));
      await listHolds(holds);
    } catch (err) { out.replaceChildren(status(`No hold: ${err.message}`, 'error')); }
  } }, h('h2', {}, 'Legal hold on a customer'), field('Customer (subject)', { name: 'hold-subject', required: true }),
  field('Reason', { name: 'hold-reason', required: true }), field('Reference', { name: 'hold-reference', required: true }), h('button', { type: 'submit' }, 'Create hold'));
  const report = h('form', { class: 'card', onsubmit: async (ev) => {
    ev.preventDefault();
    const subject = report.querySelector('[name=report-subject]').value.trim();
    const kind = report.querySelector('[name=report-kind]').value;
    try {
      const answer = await get(`/v1/subjects/${encodeURIComponent(subject)}/report`, { kind });
      out.replaceChildren(h('details', { open: true }, h('summary', {}, `Report (${kind}) for ${subject}`), h('pre', {}, JSON.stringify(answer, null, 2))));
    } catch (err) { out.replaceChildren(status(`No report: ${err.message}`, 'error')); }
  } }, h('h2', {}, 'Subject report'), field('Customer (subject)', { name: 'report-subject', required: true }),
  h('div', { class: 'field' }, h('label', { for: 'report-kind' }, 'Kind'), h('select', { id: 'report-kind', name: 'report-kind' }, ['access', 'disclosures', 'erasure'].map((k) => h('option', { value: k }, k)))),
  h('button', { type: 'submit' }, 'Make report'));
  const holds = h('div', {});
  main.append(out, h('div', { class: 'cards' }, erase, hold, report), holds);
  await listHolds(holds);
}

async function listHolds(list) {
  const answer = await get('/v1/holds').catch(() => ({ holds: [] }));
  list.replaceChildren(table('Legal holds', ['Id', 'Covers', 'Reason', 'Reference', 'Created', ''], (answer.holds || []).map((x) => [x.id,
    x.scope.subject || (x.scope.tenant ? 'the whole tenant' : JSON.stringify(x.scope.filter)), x.reason, x.reference, when(x.created_at),
    !x.active ? 'released' : h('button', { type: 'button', onclick: async () => {
      const why = prompt('Why is the hold released?');
      if (!why) return;
      try { await del(`/v1/holds/${encodeURIComponent(x.id)}`, { reason: why }); await listHolds(list); } catch (err) { list.prepend(status(err.message, 'error')); }
    } }, `Release ${x.id}`)])));
}

export { may };
