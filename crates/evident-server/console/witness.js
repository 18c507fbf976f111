// The witness policy of the in-page verification: k of n witness keys (vkeys of type 0x04,
// c2sp.org/tlog-cosignature) kept in this browser, and the check that the checkpoint carries at
// least k valid `cosignature/v1` cosignatures by them (WebCrypto Ed25519). Like the rest of the
// verification, nothing here trusts the server.
import { h, field, status } from './dom.js';
import * as v from './verify.js';

const SLOT = 'evident.witness-policy';
const enc = new TextEncoder();
const hex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
const label = (key) => `${key.name}+${hex(key.id)}`;

/** The policy kept in this browser, {vkeys: [text], threshold}, or null when none is set. */
export function loadPolicy() {
  try {
    const policy = JSON.parse(localStorage.getItem(SLOT) || 'null');
    return policy && Array.isArray(policy.vkeys) && policy.vkeys.length ? policy : null;
  } catch { return null; }
}

/** Checks pasted witness vkeys (one a line) and a threshold; throws naming the field at fault. */
export async function parsePolicy(text, threshold) {
  const lines = text.split('\n').map((line) => line.trim()).filter(Boolean);
  if (lines.length === 0) throw new Error('witness keys: paste at least one witness vkey (name+hash+base64), one a line');
  const keys = [];
  for (const [i, line] of lines.entries()) {
    try { keys.push(await v.parseVkey(line, 4)); } catch (err) { throw new Error(`witness keys, line ${i + 1}: ${err.message}`); }
  }
  if (new Set(keys.map(label)).size !== keys.length) throw new Error('witness keys: a key is listed twice');
  const k = Number(threshold);
  if (!/^\d+$/.test(String(threshold).trim()) || k < 1 || k > keys.length) {
    throw new Error(`threshold: a whole number from 1 to ${keys.length} (the number of witness keys)`);
  }
  return { vkeys: keys.map((key) => key.text), threshold: k };
}

async function cosignatureValid(witness, text, bytes) {
  if (bytes.length !== 72) return false;
  const time = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0);
  const key = await crypto.subtle.importKey('raw', witness.key, { name: 'Ed25519' }, false, ['verify']);
  return crypto.subtle.verify({ name: 'Ed25519' }, key, bytes.slice(8), enc.encode(`cosignature/v1\ntime ${time}\n${text}`));
}

/** Which pinned witnesses cosigned the signed note: {cosigned, missing, bad}, each `name+keyid`. */
export async function checkCosignatures(note, policy) {
  const { text, signatures } = v.parseNote(note);
  const result = { cosigned: [], missing: [], bad: [] };
  for (const vkeyText of policy.vkeys) {
    const witness = await v.parseVkey(vkeyText, 4);
    const lines = signatures.filter((sig) => sig.name === witness.name && v.equal(sig.id, witness.id));
    let ok = false;
    for (const sig of lines) ok = ok || await cosignatureValid(witness, text, sig.signature);
    result[ok ? 'cosigned' : lines.length ? 'bad' : 'missing'].push(label(witness));
  }
  return result;
}

/** The step "witness policy: k of n" (ok null: no policy is set, which is said, not failed). */
export async function witnessStep(note, step) {
  const policy = loadPolicy();
  if (!policy) { step(null, 'no witness policy is set in this browser', 'set one below to require witness cosignatures'); return; }
  const title = `witness policy: ${policy.threshold} of ${policy.vkeys.length}`;
  try {
    const r = await checkCosignatures(note, policy);
    const detail = [`cosigned by ${r.cosigned.length}: ${r.cosigned.join(', ') || 'none'}`];
    if (r.missing.length) detail.push(`not cosigned by: ${r.missing.join(', ')}`);
    if (r.bad.length) detail.push(`cosignature does not verify: ${r.bad.join(', ')}`);
    step(r.cosigned.length >= policy.threshold, title, detail.join('; '));
  } catch (err) { step(false, title, err.message); }
}

/** The policy as set in this browser, and a form to set or clear it; `changed()` re-verifies. */
export function policyPanel(changed) {
  const policy = loadPolicy();
  const keys = field('Witness keys (vkeys, one a line)', { tag: 'textarea', name: 'witness-vkeys', rows: 3, spellcheck: 'false' });
  keys.querySelector('textarea').value = policy ? policy.vkeys.join('\n') : '';
  const k = field('Cosignatures required (k)', { name: 'witness-threshold', type: 'number', min: 1, value: policy?.threshold ?? 1 });
  const out = h('div', { 'aria-live': 'polite' });
  const save = async (ev) => {
    ev.preventDefault();
    try {
      const next = await parsePolicy(keys.querySelector('textarea').value, k.querySelector('input').value);
      localStorage.setItem(SLOT, JSON.stringify(next));
      changed();
    } catch (err) { out.replaceChildren(status(`Witness policy not saved: ${err.message}`, 'error')); }
  };
  const clear = () => { localStorage.removeItem(SLOT); changed(); };
  return h('section', { class: 'witness-policy', 'aria-labelledby': 'witness-h' },
    h('h2', { id: 'witness-h' }, 'Witness policy'),
    h('p', { id: 'witness-now' }, policy ? `${policy.threshold} of ${policy.vkeys.length} witnesses must cosign: `
      : 'None set in this browser.', policy ? policy.vkeys.map((t) => t.split('+').slice(0, 2).join('+')).join(', ') : null),
    h('form', { id: 'witness-form', novalidate: true, onsubmit: save }, keys, k, h('div', { class: 'buttons' },
      h('button', { type: 'submit' }, 'Save policy'), policy ? h('button', { type: 'button', id: 'witness-clear', onclick: clear }, 'Clear policy') : null)),
    out);
}
