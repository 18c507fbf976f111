// Customer insight over `/v1/insights/...`: trend, funnel, journeys, cohorts and service measure.
// Each view is a form whose values live in the URL (so a view can be shared), an SVG chart and the
// same numbers as a table for screen readers. A suppressed cell reads "hidden" (k: the
// tenant's threshold), never 0. The server decides who may ask and audits every query.
import { get } from './api.js';
import { h, s, show, status, field, table, link, route } from './dom.js';

const DIMENSIONS = ['', 'channel', 'outcome', 'type', 'action', 'source', 'actor', 'target_type'];
const DATES = [{ name: 'from', label: 'From (UTC day)', type: 'date' }, { name: 'to', label: 'To, exclusive (UTC day)', type: 'date' }];
const by = (value) => ({ name: 'by', label: 'Break down by', options: DIMENSIONS, value });

const VIEWS = {
  trend: { label: 'Trend', fields: [by('outcome'), { name: 'bucket', label: 'Bucket', options: ['day', 'hour', 'week', 'month'], value: 'day' }, ...DATES], render: trendView },
  funnel: { label: 'Funnel', fields: [
    { name: 'steps', label: 'Steps, one per line (search qualifiers: type: action: outcome: channel: ...)', tag: 'textarea', rows: 4,
      value: 'type:contact.opened;type:contact.verified outcome:success;type:contact.resolved' },
    { name: 'within', label: 'Window from the first step (30m, 24h, 7d)', value: '7d' }, by('channel'), ...DATES], render: funnelView },
  journeys: { label: 'Journeys', fields: [{ name: 'only', label: 'Only events matching', value: 'type:contact.*' },
    { name: 'resolved', label: 'Resolving step (for repeat contacts)', value: 'type:contact.resolved' },
    { name: 'top', label: 'Top paths', type: 'number', min: 1, max: 100, value: '10' }, ...DATES], render: journeysView },
  cohorts: { label: 'Cohorts', fields: [{ name: 'period', label: 'Period', options: ['week', 'month'], value: 'week' },
    { name: 'activity', label: 'Activity (optional step)', value: '' }, ...DATES], render: cohortsView },
  measure: { label: 'Service measure', fields: [{ name: 'first', label: 'First step', value: 'type:contact.opened' },
    { name: 'last', label: 'Last step', value: 'type:contact.resolved' }, by('channel'), ...DATES], render: measureView },
};

export async function insightPage(query) {
  const name = Object.hasOwn(VIEWS, query.get('view') || '') ? query.get('view') : 'trend';
  const view = VIEWS[name];
  const values = Object.fromEntries(view.fields.map((f) => [f.name, query.get(f.name) ?? f.value]));
  const main = show('Insight');
  main.append(h('nav', { class: 'tabs', 'aria-label': 'Insight views' }, Object.entries(VIEWS).map(([v, { label }]) =>
    (v === name ? h('strong', { 'aria-current': 'page' }, label) : link(`${route('insight')}?view=${v}`, label)))));
  const out = h('div', { id: 'insight', 'aria-live': 'polite' });
  main.append(form(name, view.fields, values), out);
  let answer;
  try { answer = await get(`/v1/insights/${name}`, params(values)); } catch (err) {
    const names = (err.problem?.['invalid-params'] || []).map((p) => p.name);
    out.append(status(`Cannot answer: ${names.map((n) => `${n}: `).join('')}${err.message}`, 'error'));
    for (const n of names) main.querySelector(`[name="${CSS.escape(n)}"]`)?.setAttribute('aria-invalid', 'true');
    return;
  }
  const k = answer.min_customers;
  out.append(h('p', { class: 'muted', id: 'insight-range' }, `${answer.from.slice(0, 10)} to ${answer.to.slice(0, 10)}`,
    k > 1 ? `; cells of fewer than ${k} customers are hidden, and others where needed so that no hidden cell can be worked out from what is shown` : ''), ...view.render(answer, values, k));
  performance.mark('evident:insight');
}

/** The API's parameters: days become RFC 3339 midnights (UTC); empty values are left out. */
function params(values) {
  const out = { ...values };
  for (const name of ['from', 'to']) if (out[name]) out[name] = `${out[name]}T00:00:00Z`;
  return out;
}

function form(name, fields, values) {
  const inputs = fields.map((f) => {
    const { options, label, ...attrs } = f;
    const value = f.name === 'steps' ? values.steps.split(';').join('\n') : values[f.name];
    if (!options) return field(label, { ...attrs, value: f.tag ? null : value, id: `i-${f.name}` });
    const select = field(label, { name: f.name, tag: 'select', id: `i-${f.name}` });
    select.querySelector('select').append(...options.map((o) => h('option', { value: o, selected: o === value }, o || '(none)')));
    return select;
  });
  const el = h('form', { class: 'card insight-form', onsubmit: (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({ view: name });
    for (const f of fields) {
      const input = el.elements[f.name];
      const v = f.name === 'steps' ? input.value.split('\n').map((l) => l.trim()).filter(Boolean).join(';') : input.value.trim();
      q.set(f.name, v);
    }
    location.hash = `${route('insight')}?${q}`;
  } }, h('div', { class: 'insight-fields' }, inputs), h('button', { type: 'submit' }, 'Show'));
  if (values.steps !== undefined) el.querySelector('textarea').value = values.steps.split(';').join('\n');
  return el;
}

/** A count, or "hidden" when suppressed (fewer than k customers, or hidden to protect such a cell). */
const count = (n) => (n === undefined || n === null ? 'hidden' : String(n));
const pct = (x) => (x === undefined || x === null ? '-' : `${(x * 100).toFixed(1)}%`);
const key = (v) => (v === null || v === undefined ? '(none)' : v);

/** Seconds as 45s, 26m, 2.1h, 2.0d. */
export function span(sec) {
  if (sec === null || sec === undefined) return '-';
  if (sec < 90) return `${Math.round(sec)}s`;
  if (sec < 90 * 60) return `${Math.round(sec / 60)}m`;
  if (sec < 36 * 3600) return `${(sec / 3600).toFixed(1)}h`;
  return `${(sec / 86400).toFixed(1)}d`;
}

/** A chart and, for screen readers, the table holding the same numbers (the chart is hidden from them). */
function chart(title, svg, tableEl, id, legend) {
  svg.setAttribute('aria-hidden', 'true');
  return h('figure', { class: 'card', id }, h('figcaption', {}, title), svg, legend, tableEl);
}

/** Horizontal bars: [{label, value, text, cls}]. */
function hbars(rows) {
  const max = Math.max(1, ...rows.map((r) => r.value || 0));
  const svg = s('svg', { viewBox: `0 0 800 ${rows.length * 26 + 4}`, class: 'bars' });
  rows.forEach((r, i) => {
    const w = Math.max(2, ((r.value || 0) / max) * 300);
    svg.append(s('text', { x: 0, y: i * 26 + 17 }, r.label.length > 34 ? `${r.label.slice(0, 33)}…` : r.label),
      s('rect', { x: 230, y: i * 26 + 4, height: 18, width: w, class: `bar ${r.cls || ''}` }),
      s('text', { x: 236 + w, y: i * 26 + 17 }, r.text));
  });
  return svg;
}

function trendView(t, values, k) {
  const series = t.series.slice(0, 6);
  const starts = [...new Set(series.flatMap((x) => x.points.map((p) => p.start)))].sort();
  const max = Math.max(1, ...series.flatMap((x) => x.points.map((p) => p.events || 0)));
  const W = 600;
  const step = starts.length > 1 ? W / (starts.length - 1) : 0;
  const svg = s('svg', { viewBox: `0 0 ${W + 60} 190`, class: 'trend' });
  svg.append(s('line', { x1: 40, x2: W + 40, y1: 160, y2: 160, class: 'grid' }), s('text', { x: 36, y: 16, class: 'axis end' }, String(max)),
    s('text', { x: 36, y: 160, class: 'axis end' }, '0'));
  series.forEach((x, i) => {
    const at = new Map(x.points.map((p) => [p.start, p]));
    let run = [];
    const flush = () => { if (run.length) svg.append(s('polyline', { points: run.join(' '), class: `line s${i}` })); run = []; };
    starts.forEach((st, j) => {
      const p = at.get(st);
      if (p && p.events === undefined) flush(); // suppressed: a gap, never a zero
      else run.push(`${40 + j * step},${160 - ((p?.events || 0) / max) * 145}`);
    });
    flush();
  });
  if (starts.length) svg.append(s('text', { x: 40, y: 180, class: 'axis' }, starts[0].slice(0, 16)), s('text', { x: W + 40, y: 180, class: 'axis end' }, starts.at(-1).slice(0, 16)));
  const legend = h('ul', { class: 'legend', 'aria-hidden': 'true' }, series.map((x, i) => h('li', { class: `s${i}` }, key(x.key))));
  const points = table(`Events per ${t.bucket}`, [t.bucket, ...series.map((x) => key(x.key))], starts.map((st) =>
    [st.slice(0, 16).replace('T', ' '), ...series.map((x) => { const p = x.points.find((q) => q.start === st); return p ? count(p.events) : '0'; })]));
  const prev = hbars(t.series.flatMap((x) => [
    { label: `${key(x.key)}: this period`, value: x.total.events, text: count(x.total.events) },
    { label: `${key(x.key)}: previous period`, value: x.previous.events, text: count(x.previous.events), cls: 'previous' }]));
  const totals = table('This period and the one before it', [t.by || 'series', 'Events', 'Previous', 'Customers', 'Failure rate'],
    t.series.map((x) => [key(x.key), count(x.total.events), count(x.previous.events), count(x.total.customers), pct(x.total.failure_rate)]));
  return [chart(`Events per ${t.bucket}${t.by ? ` by ${t.by}` : ''}`, svg, points, 'trend-chart', legend),
    chart('This period beside the previous one', prev, totals, 'trend-previous')];
}

function funnelView(f, values, k) {
  const rows = f.steps.map((st) => ({ label: `${st.step}. ${st.query}`, value: st.customers,
    text: `${count(st.customers)} (${pct(st.conversion)})${st.step > 1 ? `, ${count(st.dropped)} dropped` : ''}` }));
  const steps = table('Customers per step', ['Step', 'Query', 'Customers', 'Conversion', 'Dropped'],
    f.steps.map((st) => [String(st.step), st.query, count(st.customers), pct(st.conversion), st.step > 1 ? count(st.dropped) : '-']));
  const ttc = f.time_to_convert;
  const out = [chart(`Funnel within ${span(f.within_seconds)}`, hbars(rows), steps, 'funnel-chart'),
    h('p', { id: 'time-to-convert' }, `Time to convert: median ${span(ttc.median_seconds)}, p90 ${span(ttc.p90_seconds)} (${count(ttc.customers)} customers)`)];
  if (f.by) {
    out.push(table(`By ${f.by}`, [f.by, ...f.steps.map((st) => `Step ${st.step}`), 'Conversion', 'Median', 'p90'],
      f.breakdown.map((g) => [key(g.key), ...g.steps.map((st) => count(st.customers)), pct(g.steps.at(-1).conversion),
        span(g.time_to_convert.median_seconds), span(g.time_to_convert.p90_seconds)])));
    out.at(-1).id = 'funnel-breakdown';
  }
  return out;
}

function journeysView(j, values, k) {
  const list = h('ol', { class: 'paths', id: 'journey-paths' }, j.paths.map((p) => h('li', {},
    h('strong', {}, `${count(p.sessions)} sessions, ${count(p.customers)} customers: `), p.path.join(' → '))));
  const out = [h('p', {}, `${count(j.sessions)} sessions of ${count(j.customers)} customers`), list];
  if (j.suppressed_paths) out.push(h('p', { class: 'muted' }, `${j.suppressed_paths} paths are hidden (fewer than ${k} customers, or hidden to protect such a path)`));
  if (j.links.length) out.push(chart('Where sessions go next', sankey(j.links),
    table('Step to step', ['Step', 'From', 'To', 'Sessions'], j.links.map((l) => [String(l.depth), l.from, l.to, String(l.sessions)])), 'journey-flow'));
  const r = j.repeats;
  if (r) out.push(h('p', { id: 'repeats' }, `Repeat contacts within ${span(r.within_seconds)}: ${count(r.repeat_customers)} of ${count(r.resolved_customers)} resolved customers (${pct(r.repeat_rate)})`));
  return out;
}

/** A simple Sankey: columns by depth, one band per link, thickness by sessions. */
function sankey(links) {
  const depths = Math.max(...links.map((l) => l.depth)) + 1;
  const nodes = new Map();
  const place = (d, name) => { const id = `${d}:${name}`; if (!nodes.has(id)) nodes.set(id, { d, name, n: [...nodes.values()].filter((x) => x.d === d).length }); return nodes.get(id); };
  const pairs = links.map((l) => [place(l.depth, l.from), place(l.depth + 1, l.to), l.sessions]);
  const max = Math.max(1, ...links.map((l) => l.sessions));
  const colW = 600 / Math.max(1, depths - 1);
  const y = (node) => 20 + node.n * 46;
  const rows = Math.max(...[...nodes.values()].map((x) => x.n)) + 1;
  const svg = s('svg', { viewBox: `0 0 760 ${rows * 46 + 20}`, class: 'sankey' });
  for (const [a, b, n] of pairs) {
    const x1 = 10 + (a.d - 1) * colW;
    const x2 = 10 + (b.d - 1) * colW;
    svg.append(s('path', { d: `M${x1},${y(a)} C${(x1 + x2) / 2},${y(a)} ${(x1 + x2) / 2},${y(b)} ${x2},${y(b)}`, class: 'flow', 'stroke-width': Math.max(1, (n / max) * 24) }));
  }
  for (const node of nodes.values()) svg.append(s('text', { x: 10 + (node.d - 1) * colW, y: y(node) - 6 }, node.name));
  return svg;
}

function cohortsView(c, values, k) {
  const width = Math.max(0, ...c.cohorts.map((x) => x.active.length));
  const cell = (x, n) => {
    if (n === null || n === undefined) return h('td', { class: 'heat suppressed' }, 'hidden');
    const share = x.customers ? n / x.customers : 0;
    return h('td', { class: `heat h${Math.min(4, Math.floor(share * 5))}` }, `${n} (${Math.round(share * 100)}%)`);
  };
  return [h('table', { class: 'cohorts', id: 'cohort-table' }, h('caption', {}, `Customers first seen each ${c.period} and active in the ${c.period}s after`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Cohort'), h('th', { scope: 'col' }, 'Customers'),
      Array.from({ length: width }, (_, i) => h('th', { scope: 'col' }, `${c.period} ${i}`)))),
    h('tbody', {}, c.cohorts.map((x) => h('tr', {}, h('th', { scope: 'row' }, x.start.slice(0, 10)), h('td', {}, count(x.customers)),
      x.active.map((n) => cell(x, n))))))];
}

function measureView(m, values, k) {
  const rows = m.rows.map((r) => ({ label: key(r.key), value: r.median_seconds, text: `median ${span(r.median_seconds)}, p90 ${span(r.p90_seconds)}` }));
  const t = table(`From ${values.first} to ${values.last}`, [m.by || 'group', 'Completed', 'Customers', 'Median', 'p90'],
    m.rows.map((r) => [key(r.key), count(r.count), count(r.customers), span(r.median_seconds), span(r.p90_seconds)]));
  return [chart(`Median time from first to last step${m.by ? ` by ${m.by}` : ''}`, hbars(rows), t, 'measure-chart')];
}
