// Pages about events: search, one event (verified in the page), a customer, a record.
import { get, may, session, ApiError } from './api.js';
import { h, s, when, show, status, field, table, link, route } from './dom.js';
import { parse, unparse } from './query.js';
import * as v from './verify.js';
import { witnessStep, policyPanel } from './witness.js';

const PAGE = 50;

function eventRow(item) {
  const e = item.event;
  return [
    when(e.time),
    link(route('event', item.event_id), e.type),
    e.action,
    e.actor?.id ? link(route('search') + `?q=${encodeURIComponent(`actor:${e.actor.id}`)}`, e.actor.id) : '-',
    e.subject ? link(route('customer', e.subject), e.subject) : '-',
    h('span', { class: `outcome ${e.outcome}` }, e.outcome),
  ];
}

const EVENT_HEADERS = ['Time', 'Type', 'Action', 'Actor', 'Customer', 'Outcome'];

/** One page of a search: every filter, a type prefix too, is the server's. */
async function fetchPage(params, cursor, want) {
  const page = await get('/v1/events', { ...params, limit: want, cursor });
  return { found: page.events, next: page.next_cursor };
}

export async function searchPage(query) {
  const text = query.get('q') || '';
  const input = h('input', { type: 'search', id: 'q', name: 'q', value: text, autocomplete: 'off',
    placeholder: 'actor:agent-7 action:update type:customer.* after:2026-11-01', 'aria-describedby': 'q-help' });
  const form = h('form', { class: 'search', role: 'search', onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = `${route('search')}?q=${encodeURIComponent(input.value.trim())}`;
  } }, h('label', { for: 'q' }, 'Search events'), input, h('button', { type: 'submit' }, 'Search'));
  const help = h('p', { id: 'q-help', class: 'muted' },
    'Qualifiers: actor: action: subject: type: (may end in *) outcome: source: target:TYPE/ID after: before:');
  const out = h('div', { id: 'results', 'aria-live': 'polite' });
  show('Search', form, help, out);
  let parsed;
  try { parsed = parse(text); } catch (err) { out.append(status(err.message, 'error')); return; }
  const chips = h('ul', { class: 'chips', 'aria-label': 'Filters' }, parsed.terms.map((term, i) => h('li', {},
    h('a', { class: 'chip', href: `${route('search')}?q=${encodeURIComponent(unparse(parsed.terms.filter((_, j) => j !== i)))}`,
      'aria-label': `Remove filter ${term.name}:${term.value}` }, `${term.name}:${term.value} ×`))));
  const quick = ['outcome:failure', 'action:update', 'action:export', 'type:auth.*'].filter((q) => !text.includes(q))
    .map((q) => h('li', {}, h('a', { class: 'chip add', href: `${route('search')}?q=${encodeURIComponent(`${text} ${q}`.trim())}` }, `+ ${q}`)));
  out.append(h('div', { class: 'chipbar' }, chips, h('ul', { class: 'chips', 'aria-label': 'Add a filter' }, quick)));
  const body = h('tbody', {});
  const more = h('button', { type: 'button', hidden: true }, 'More results');
  const note = h('p', { class: 'muted', id: 'result-count' });
  out.append(h('table', { class: 'events' }, h('caption', {}, 'Matching events, newest first'),
    h('thead', {}, h('tr', {}, EVENT_HEADERS.map((n) => h('th', { scope: 'col' }, n)))), body), note, more);
  let cursor = null;
  let shown = 0;
  const load = async () => {
    more.disabled = true;
    const started = performance.now();
    try {
      const { found, next } = await fetchPage(parsed.params, cursor, PAGE);
      for (const item of found) body.append(h('tr', {}, eventRow(item).map((c) => h('td', {}, c))));
      shown += found.length;
      cursor = next;
      more.hidden = !next;
      note.textContent = `${shown} events shown${next ? '; more available' : ''} (${Math.round(performance.now() - started)} ms)`;
      performance.mark('evident:results');
    } catch (err) {
      out.append(status(`Search failed: ${err.message}`, 'error'));
    } finally { more.disabled = false; }
  };
  more.addEventListener('click', load);
  await load();
}

function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, value]) => value !== undefined && value !== null && value !== '')
    .map(([name, value]) => [h('dt', {}, name), h('dd', {}, value)]));
}

/** A form asking investigators why they need personal values; calls `then(purpose)`. */
export function purposeForm(then) {
  if (session.info?.role !== 'investigator') return '';
  const form = h('form', { class: 'purpose', onsubmit: (ev) => {
    ev.preventDefault();
    const purpose = form.querySelector('input').value.trim();
    if (purpose) then(purpose);
  } }, field('Purpose (recorded in the audit log)', { name: 'purpose', required: true, maxlength: 512 }),
  h('button', { type: 'submit' }, 'Reveal personal values'));
  return form;
}

export async function eventPage(id, query) {
  const purpose = query.get('purpose');
  const main = show('Event');
  let item;
  try { item = await get(`/v1/events/${encodeURIComponent(id)}`, { purpose }); } catch (err) {
    main.append(status(`Cannot read the event: ${err.message}`, 'error')); return;
  }
  const e = item.event;
  const panel = h('section', { class: 'verify', 'aria-labelledby': 'verify-h' }, h('h2', { id: 'verify-h' }, 'Proof, checked in this page'));
  main.append(dl([
    ['Type', e.type], ['Action', e.action], ['Outcome', e.outcome], ['Time', when(e.time)],
    ['Actor', e.actor?.id], ['Customer', e.subject ? link(route('customer', e.subject), e.subject) : null],
    ['Reason', e.reason], ['Source', e.source], ['Log index', String(item.index)], ['Personal values', item.personal],
    ['Records', (e.targets || []).map((t) => [link(route('record', t.type, t.id), `${t.type}/${t.id}`), ' '])],
  ]), purpose ? status(`Personal values shown for: ${purpose}`) : purposeForm((p) => {
    location.hash = `${route('event', id)}?purpose=${encodeURIComponent(p)}`;
  }), panel, h('details', {}, h('summary', {}, 'The event as stored (JSON)'), h('pre', {}, JSON.stringify(e, null, 2))));
  await verifyInto(panel, id, e);
  panel.append(policyPanel(() => window.dispatchEvent(new HashChangeEvent('hashchange'))));
}

export function stepItem(ok, title, detail) {
  const [cls, word] = ok === null ? ['muted', 'Not checked: '] : ok ? ['ok', 'Passed: '] : ['bad', 'Failed: '];
  return h('li', { class: cls }, h('strong', {}, word), title, detail ? h('span', { class: 'muted' }, ` (${detail})`) : null);
}

/** Runs every check of the event's proof; "Verified" only when all pass. */
async function verifyInto(panel, id, shown) {
  const tenant = session.info.tenant;
  const steps = h('ol', { class: 'steps' });
  const verdict = h('p', { class: 'verdict pending', role: 'status', id: 'verdict' }, 'Checking…');
  panel.append(verdict, steps);
  const failures = [];
  const step = (ok, title, detail) => { steps.append(stepItem(ok, title, detail)); if (ok === false) failures.push(title); };
  try {
    const [entry, receiptText, vkeyText] = await Promise.all([
      get(`/v1/events/${encodeURIComponent(id)}/entry`, null, 'bytes'),
      get(`/v1/events/${encodeURIComponent(id)}/proof`, null, 'text'),
      get(`/v1/logs/${encodeURIComponent(tenant)}/vkeys`, null, 'text'),
    ]);
    const vkey = await v.parseVkey(vkeyText.split('\n')[0]);
    panel.append(pinPanel(vkey, step));
    const committed = JSON.parse(new TextDecoder().decode(entry));
    const same = ['type', 'action', 'outcome', 'time', 'subject'].every((k) => sameValue(committed[k], shown[k]))
      && sameValue(committed.actor?.id, shown.actor?.id);
    step(same, 'the committed entry says what this page shows', same ? null : 'type, action, outcome, time, actor or customer differ');
    const receipt = v.parseReceipt(receiptText);
    let checkpoint = null;
    try {
      checkpoint = await v.verifyNote(receipt.checkpoint, vkey);
      step(true, `the checkpoint is signed by the log key (tree size ${checkpoint.size})`);
    } catch (err) { step(false, 'the checkpoint signature', err.message); }
    if (checkpoint) await inclusion(entry, receipt, checkpoint, step);
    if (checkpoint) await consistency(tenant, checkpoint, step);
    if (checkpoint) await witnessStep(receipt.checkpoint, step);
  } catch (err) {
    step(false, 'fetching the proof material', err instanceof ApiError ? `${err.status} ${err.message}` : err.message);
  }
  verdict.className = `verdict ${failures.length ? 'failed' : 'verified'}`;
  verdict.textContent = failures.length ? `Not verified. Failed: ${failures.join('; ')}` : 'Verified in this page';
}

function sameValue(a, b) {
  return (a ?? null) === (b ?? null) || (typeof a === 'string' && typeof b === 'string' && new Date(a).getTime() === new Date(b).getTime());
}

async function inclusion(entry, receipt, checkpoint, step) {
  try {
    const root = await v.rootFromInclusion(await v.leafHash(entry), receipt.index, checkpoint.size, receipt.proof);
    const ok = v.b64encode(root) === v.b64encode(checkpoint.root);
    step(ok, `the inclusion proof leads from the entry (index ${receipt.index}) to the checkpoint root`,
      ok ? null : 'the entry\'s hash does not lead to the signed root: the entry was changed after it was logged');
  } catch (err) { step(false, 'the inclusion proof', err.message); }
}

/**
 * The consistency watch of a log: its current checkpoint's signature checked against the log key
 * (and a pinned one), then its consistency with the last checkpoint this browser verified.
 */
export async function watchLog(tenant, step) {
  try {
    const [note, vkeyText] = await Promise.all([
      get(`/v1/logs/${encodeURIComponent(tenant)}/checkpoint`, null, 'text'),
      get(`/v1/logs/${encodeURIComponent(tenant)}/vkeys`, null, 'text'),
    ]);
    const vkey = await v.parseVkey(vkeyText.split('\n')[0]);
    const pinned = localStorage.getItem(`evident.pinned.${vkey.name}`);
    if (pinned) step(pinned === vkey.text, 'the log key is the one pinned in this browser', pinned === vkey.text ? null : `pinned ${pinned}`);
    const checkpoint = await v.verifyNote(note, vkey);
    step(true, `the checkpoint is signed by the log key (tree size ${checkpoint.size})`);
    await consistency(tenant, checkpoint, step);
  } catch (err) {
    step(false, 'the current checkpoint', err instanceof ApiError ? `${err.status} ${err.message}` : err.message);
  }
}

/** Checks the current checkpoint against the last one this browser saw, then remembers it. */
async function consistency(tenant, cp, step) {
  const slot = `evident.checkpoint.${cp.origin}`;
  const seen = JSON.parse(localStorage.getItem(slot) || 'null');
  const here = { size: String(cp.size), root: v.b64encode(cp.root) };
  if (!seen) { localStorage.setItem(slot, JSON.stringify(here)); step(true, 'first checkpoint this browser has seen of this log; remembered'); return; }
  if (BigInt(seen.size) > cp.size) { step(false, 'rollback check', `this browser saw size ${seen.size}, the log now shows ${cp.size}`); return; }
  try {
    const answer = await get(`/v1/logs/${encodeURIComponent(tenant)}/consistency`, { from: seen.size, to: String(cp.size) });
    const ok = await v.verifyConsistency(BigInt(seen.size), v.b64decode(seen.root), cp.size, cp.root, answer.proof.map(v.b64decode));
    step(ok, `consistency from the last checkpoint seen (size ${seen.size}) to this one`, ok ? null : 'the log forked or was rewritten');
    if (ok) localStorage.setItem(slot, JSON.stringify(here));
  } catch (err) { step(false, 'consistency from the last checkpoint seen', err.message); }
}

function pinPanel(vkey, step) {
  const slot = `evident.pinned.${vkey.name}`;
  const pinned = localStorage.getItem(slot);
  if (pinned) step(pinned === vkey.text, 'the log key is the one pinned in this browser', pinned === vkey.text ? null : `pinned ${pinned}`);
  const pin = h('button', { type: 'button', onclick: () => { localStorage.setItem(slot, vkey.text); pin.textContent = 'Pinned'; } }, pinned ? 'Pin this key instead' : 'Pin this key');
  return h('div', { class: 'vkey' }, h('p', {}, 'Log public key (compare it with the one you were given):'), h('code', {}, vkey.text), ' ', pin);
}

const LANE_H = 28;

/** The timeline as a picture: one lane per actor (or per source), a mark per event. */
function timelinePicture(items, by) {
  const laneOf = (e) => (by === 'source' ? e.source : e.actor?.id) || '-';
  const lanes = [...new Set(items.map((i) => laneOf(i.event)))].sort();
  const times = items.map((i) => new Date(i.event.time).getTime());
  const [t0, t1] = [Math.min(...times), Math.max(...times) + 1];
  const [left, width] = [170, 900];
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - 10);
  const svg = s('svg', { viewBox: `0 0 ${width} ${lanes.length * LANE_H + 30}`, role: 'group', class: 'timeline',
    'aria-label': `Timeline of ${items.length} events in ${lanes.length} lanes by ${by}` });
  lanes.forEach((lane, i) => {
    svg.append(s('text', { x: 4, y: i * LANE_H + 18, class: 'lane' }, lane.length > 24 ? `${lane.slice(0, 23)}…` : lane),
      s('line', { x1: left, x2: width - 10, y1: i * LANE_H + 14, y2: i * LANE_H + 14, class: 'grid' }));
  });
  for (const item of items) {
    const e = item.event;
    const mark = s('a', { href: route('event', item.event_id) },
      s('circle', { cx: x(new Date(e.time).getTime()).toFixed(1), cy: lanes.indexOf(laneOf(e)) * LANE_H + 14, r: 5,
        class: `mark ${e.action} ${e.outcome}` }, s('title', {}, `${e.time} ${e.type} by ${e.actor?.id}${e.reason ? ` (${e.reason})` : ''}`)));
    svg.append(mark);
  }
  const y = lanes.length * LANE_H + 24;
  svg.append(s('text', { x: left, y, class: 'axis' }, new Date(t0).toLocaleString()),
    s('text', { x: width - 10, y, class: 'axis end' }, new Date(t1).toLocaleString()));
  return svg;
}

export async function customerPage(subject, query) {
  const purpose = query.get('purpose');
  const by = query.get('by') === 'source' ? 'source' : 'actor';
  const main = show(`Customer ${subject}`);
  let page;
  try { page = await get(`/v1/subjects/${encodeURIComponent(subject)}/timeline`, { limit: 1000, order: 'oldest', purpose }); } catch (err) {
    main.append(status(`Cannot read the timeline: ${err.message}`, 'error')); return;
  }
  const base = route('customer', subject);
  const keep = purpose ? `&purpose=${encodeURIComponent(purpose)}` : '';
  main.append(h('p', {}, `${page.events.length} events${page.next_cursor ? ' (the first 1000)' : ''}. Lanes by `,
    by === 'actor' ? h('strong', {}, 'actor') : link(`${base}?by=actor${keep}`, 'actor'), ' · ',
    by === 'source' ? h('strong', {}, 'channel') : link(`${base}?by=source${keep}`, 'channel')));
  if (page.events.length) main.append(h('figure', {}, timelinePicture(page.events, by), h('figcaption', { class: 'muted' }, 'Each mark is an event (blue: reads, amber: changes, red: failures); open one to see its proof.')));
  main.append(purpose ? status(`Personal values shown for: ${purpose}`) : purposeForm((p) => {
    location.hash = `${base}?by=${by}&purpose=${encodeURIComponent(p)}`;
  }));
  main.append(table('Every access and change, who did it and why', ['Time', 'Type', 'Action', 'Actor', 'Why', 'What changed', 'Outcome'],
    [...page.events].reverse().map((item) => {
      const e = item.event;
      const actor = e.actor?.display ? `${e.actor.display} (${e.actor.id})` : e.actor?.id || '-';
      return [when(e.time), link(route('event', item.event_id), e.type), e.action, actor, e.reason || h('em', {}, 'no reason given'),
        changeList(e.changes), e.outcome];
    })));
}

/** A change list: `field: before → after` when values are shown, else the fields only. */
function changeList(changes) {
  if (!changes?.length) return '-';
  return h('ul', { class: 'changes' }, changes.map((c) => h('li', {}, 'before' in c || 'after' in c
    ? [h('code', {}, c.field), ': ', valueText(c.before), ' → ', valueText(c.after)] : h('code', {}, c.field))));
}

function valueText(value) {
  if (value === undefined) return h('em', {}, 'withheld');
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export async function recordPage(type, id, query) {
  const purpose = query.get('purpose');
  const main = show(`Record ${type}/${id}`);
  let history;
  try { history = await get(`/v1/records/${encodeURIComponent(type)}/${encodeURIComponent(id)}/history`, { purpose }); } catch (err) {
    main.append(status(`Cannot read the history: ${err.message}`, 'error')); return;
  }
  const versions = history.versions;
  if (!versions.length) { main.append(status('No recorded changes of this record.')); return; }
  if (!history.values) main.append(status('Values are withheld: only which fields changed is shown.'), purposeForm((p) => {
    location.hash = `${route('record', type, id)}?purpose=${encodeURIComponent(p)}`;
  }));
  const slider = h('input', { type: 'range', id: 'at', min: 1, max: versions.length, value: versions.length, step: 1 });
  const label = h('output', { for: 'at', id: 'at-out' });
  const detail = h('div', { id: 'version' });
  const render = () => {
    const ver = versions[Number(slider.value) - 1];
    label.replaceChildren(`Version ${ver.number} of ${versions.length}, `, when(ver.time));
    detail.replaceChildren(
      dl([['Changed by', ver.actor?.id], ['Why', ver.reason || h('em', {}, 'no reason given')], ['Action', ver.action],
        ['Event', link(route('event', ver.event_id), ver.event_id)]]),
      table(`Changes in version ${ver.number}: before and after, side by side`, ['Field', 'Before', 'After'],
        ver.changes.map((c) => [c.field, valueText(c.before), valueText(c.after)])),
      ver.state ? h('details', { open: true }, h('summary', {}, `State after version ${ver.number}`), h('pre', {}, JSON.stringify(ver.state, null, 2))) : null);
  };
  slider.addEventListener('input', render);
  main.append(h('div', { class: 'field' }, h('label', { for: 'at' }, 'State at a past moment'), slider, label), detail,
    table('All versions', ['#', 'Time', 'Actor', 'Fields', 'Why'], versions.map((ver) => [String(ver.number), when(ver.time), ver.actor?.id || '-',
      ver.changes.map((c) => c.field).join(', '), ver.reason || '-'])));
  render();
}

export { may };
