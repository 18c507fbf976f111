// Findings (dashboard, one finding and its workflow), rules and webhooks for admins (with the
// backtest as a chart), and log health.
import { get, post, put, del, may, session } from './api.js';
import { h, s, when, show, status, field, table, link, route } from './dom.js';
import { watchLog, stepItem } from './views.js';

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];

function bars(title, counts) {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  const max = Math.max(1, ...entries.map(([, n]) => n));
  const svg = s('svg', { viewBox: `0 0 420 ${entries.length * 22 + 4}`, role: 'img', class: 'bars',
    'aria-label': `${title}: ${entries.map(([k, n]) => `${k} ${n}`).join(', ')}` });
  entries.forEach(([name, n], i) => svg.append(
    s('text', { x: 0, y: i * 22 + 15, class: 'lane' }, name),
    s('rect', { x: 150, y: i * 22 + 3, height: 16, width: Math.max(2, (n / max) * 230), class: `bar ${name}` }),
    s('text', { x: 156 + (n / max) * 230, y: i * 22 + 15, class: 'lane' }, String(n))));
  return h('figure', { class: 'card' }, h('figcaption', {}, title), svg);
}

/** Counts per day as columns (findings over time, a backtest's hits). */
function columns(title, byDay) {
  const days = Object.keys(byDay).sort();
  const max = Math.max(1, ...Object.values(byDay));
  const w = Math.max(12, Math.floor(400 / Math.max(1, days.length)));
  const svg = s('svg', { viewBox: `0 0 ${days.length * w + 10} 130`, role: 'img', class: 'bars',
    'aria-label': `${title}: ${days.map((d) => `${d} ${byDay[d]}`).join(', ')}` });
  days.forEach((day, i) => {
    const height = (byDay[day] / max) * 100;
    svg.append(s('rect', { x: i * w + 2, y: 105 - height, width: w - 3, height, class: 'bar col' }, s('title', {}, `${day}: ${byDay[day]}`)));
  });
  if (days.length) svg.append(s('text', { x: 2, y: 124, class: 'axis' }, days[0]), s('text', { x: days.length * w + 8, y: 124, class: 'axis end' }, days.at(-1)));
  return h('figure', { class: 'card' }, h('figcaption', {}, title), svg);
}

function countBy(items, key) {
  return items.reduce((acc, item) => { const k = key(item); acc[k] = (acc[k] || 0) + 1; return acc; }, {});
}

export async function findingsPage(query) {
  const wanted = query.get('status') || 'open';
  const main = show('Findings');
  const all = [];
  let cursor = null;
  try {
    do {
      const page = await get('/v1/findings', { status: wanted === 'all' ? null : wanted, limit: 500, cursor });
      all.push(...page.findings);
      cursor = page.next_cursor;
    } while (cursor && all.length < 5000);
  } catch (err) { main.append(status(`Cannot read findings: ${err.message}`, 'error')); return; }
  main.append(h('nav', { class: 'tabs', 'aria-label': 'Finding status' }, ['open', 'acknowledged', 'resolved', 'false_positive', 'all']
    .map((st) => (st === wanted ? h('strong', { 'aria-current': 'page' }, st) : link(`${route('findings')}?status=${st}`, st)))));
  main.append(h('div', { class: 'cards' }, bars(`${wanted} by severity`, countBy(all, (f) => f.severity)),
    bars(`${wanted} by rule`, countBy(all, (f) => f.rule)), columns(`${wanted} over time (by day of the event)`, countBy(all, (f) => f.time.slice(0, 10)))));
  const order = (f) => SEVERITIES.indexOf(f.severity);
  main.append(table(`${all.length} findings, most severe first`, ['Severity', 'Rule', 'Explanation', 'When', 'Status'],
    [...all].sort((a, b) => order(a) - order(b)).map((f) => [h('span', { class: `sev ${f.severity}` }, f.severity), f.rule,
      link(route('finding', f.id), f.explanation), when(f.time), f.status])));
  if (may('admin')) main.append(h('p', {}, link(route('rules'), 'Rules and webhooks')));
}

export async function findingPage(id) {
  const main = show('Finding');
  let f;
  try { f = await get(`/v1/findings/${encodeURIComponent(id)}`); } catch (err) { main.append(status(`Cannot read the finding: ${err.message}`, 'error')); return; }
  main.append(h('p', { class: 'lead' }, f.explanation), h('dl', { class: 'facts' },
    [['Status', h('span', { id: 'finding-status' }, f.status)], ['Severity', f.severity], ['Rule', f.rule], ['Actor', f.actor],
      ['Customer', f.subject ? link(route('customer', f.subject), f.subject) : null], ['When', when(f.time)], ['Opened', when(f.opened_at)]]
      .filter(([, value]) => value).map(([k, value]) => [h('dt', {}, k), h('dd', {}, value)])));
  main.append(h('h2', {}, `Triggering events (${f.trigger_count})`), h('ul', {}, f.triggers.map((e) => h('li', {}, link(route('event', e), e)))));
  if (f.history?.length) main.append(table('Workflow history', ['When', 'Status', 'By', 'Comment'],
    f.history.map((step) => [when(step.at), step.status, step.by, step.comment || '-'])));
  if (may('review')) main.append(workflowForm(f));
}

function workflowForm(f) {
  const out = h('div', { 'aria-live': 'polite' });
  const comment = field('Comment (required to resolve or mark false positive)', { name: 'comment', tag: 'textarea', rows: 3 });
  const act = (to) => async () => {
    const text = comment.querySelector('textarea').value.trim();
    try {
      const answer = await post(`/v1/findings/${encodeURIComponent(f.id)}/status`, { status: to, comment: text || undefined });
      document.getElementById('finding-status').textContent = answer.status;
      out.replaceChildren(status(`The finding is now ${answer.status}.`));
    } catch (err) { out.replaceChildren(status(`Not changed: ${err.message}`, 'error')); }
  };
  return h('section', { class: 'card' }, h('h2', {}, 'Work this finding'), comment,
    h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: act('acknowledged') }, 'Acknowledge'),
      h('button', { type: 'button', onclick: act('resolved') }, 'Resolve'),
      h('button', { type: 'button', onclick: act('false_positive') }, 'False positive')), out);
}

export async function rulesPage() {
  const main = show('Rules and webhooks');
  const chart = h('div', { 'aria-live': 'polite' });
  const rules = h('div', {});
  const hooks = h('div', {});
  main.append(rules, chart, webhookForm(hooks), hooks);
  await Promise.all([listRules(rules, chart), listWebhooks(hooks)]);
}

async function listRules(list, chart) {
  const answer = await get('/v1/rules');
  const toggle = (rule) => async () => {
    try { await put(`/v1/rules/${encodeURIComponent(rule.id)}`, { ...rule, enabled: !rule.enabled }); await listRules(list, chart); } catch (err) {
      chart.replaceChildren(status(`Not changed: ${err.message}`, 'error'));
    }
  };
  list.replaceChildren(table('Detection rules', ['Rule', 'Template', 'Severity', 'Enabled', 'Description', ''],
    answer.rules.map((r) => [r.id, r.template, r.severity, r.enabled ? 'yes' : 'no', r.description || '-', h('div', { class: 'buttons' },
      h('button', { type: 'button', onclick: () => backtest(r, chart) }, `Backtest ${r.id}`),
      h('button', { type: 'button', onclick: toggle(r) }, `${r.enabled ? 'Disable' : 'Enable'} ${r.id}`))])));
}

function webhookForm(list) {
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card', onsubmit: async (ev) => {
    ev.preventDefault();
    const value = (name) => form.querySelector(`[name=${name}]`).value.trim();
    try {
      const made = await post('/v1/webhooks', { url: value('hook-url'), min_severity: value('hook-severity'), description: value('hook-description') || undefined });
      out.replaceChildren(h('div', { class: 'status info', role: 'status' },
        h('p', {}, `Webhook ${made.id} added. Its signing secret (check each delivery's Evident-Signature with it) is shown this once:`),
        h('code', { id: 'hook-secret' }, made.secret), ' ',
        h('button', { type: 'button', onclick: () => navigator.clipboard.writeText(made.secret).then(() => { out.append(status('Copied.')); }) }, 'Copy secret')));
      await listWebhooks(list);
    } catch (err) { out.replaceChildren(status(`Not added: ${err.message}`, 'error')); }
  } }, h('h2', {}, 'Add a webhook'), field('URL (http:// or https://, a public address)', { name: 'hook-url', type: 'url', required: true }),
  h('div', { class: 'field' }, h('label', { for: 'f-hook-severity' }, 'Minimum severity'),
    h('select', { id: 'f-hook-severity', name: 'hook-severity' }, SEVERITIES.map((sev) => h('option', { value: sev, selected: sev === 'medium' }, sev)))),
  field('Description', { name: 'hook-description' }), h('button', { type: 'submit' }, 'Add webhook'), out);
  return form;
}

async function listWebhooks(list) {
  const answer = await get('/v1/webhooks');
  list.replaceChildren(table('Webhooks', ['Id', 'URL', 'Minimum severity', 'Description', ''], answer.webhooks.map((w) => [w.id, w.url, w.min_severity,
    w.description || '-', h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm(`Delete webhook ${w.url}?`)) return;
      try { await del(`/v1/webhooks/${encodeURIComponent(w.id)}`); await listWebhooks(list); } catch (err) { list.prepend(status(err.message, 'error')); }
    } }, `Delete ${w.id}`)])));
}

async function backtest(rule, out) {
  out.replaceChildren(status(`Backtesting ${rule.id}…`));
  const to = new Date();
  const from = new Date(to.getTime() - 30 * 86400e3);
  try {
    const report = await post('/v1/rules/backtest', { rule_id: rule.id, from: from.toISOString(), to: to.toISOString() });
    const found = report.findings || [];
    out.replaceChildren(columns(`Backtest of ${rule.id}: ${found.length} findings over 30 days`, countBy(found, (f) => String(f.time).slice(0, 10))));
  } catch (err) { out.replaceChildren(status(`Backtest failed: ${err.message}`, 'error')); }
}

/** Log health of a tenant (`?tenant=`, else the session's): what `/v1/logs/{tenant}/health` answers. */
export async function healthPage(query) {
  const tenant = query.get('tenant') || session.info.tenant;
  const main = show(`Log health · ${tenant}`);
  let health;
  const [service] = await Promise.all([
    get('/healthz').catch((err) => err.problem || { status: 'unknown', problems: [err.message] }),
    get(`/v1/logs/${encodeURIComponent(tenant)}/health`).then((answer) => { health = answer; }, (err) => {
      main.append(status(`Log health failed: ${err.message}`, 'error'));
    }),
  ]);
  if (!health) return;
  const perSecond = (health.last_minute / 60).toFixed(2);
  const age = health.checkpoint_age_secs === undefined ? 'no checkpoint yet' : `${health.checkpoint_age_secs.toFixed(1)} s`;
  const n = health.node;
  const facts = [
    ['Service', `${service.status}${service.problems?.length ? `: ${service.problems.join('; ')}` : ''}`],
    ['Tree size', String(health.tree_size)],
    ['Checkpoint age', age, health.newest_at ? when(health.newest_at) : null],
    ['Entries sequenced, last minute', String(health.last_minute)],
    ['Entries sequenced, last hour', String(health.last_hour)],
    ['Ingestion rate (last minute)', `${perSecond} per second`],
  ];
  main.append(h('dl', { class: 'facts', id: 'health-facts' }, facts.map(([k, value, extra]) =>
    [h('dt', {}, k), h('dd', { 'data-fact': k }, value, extra ? ' (' : '', extra || '', extra ? ')' : '')])));
  main.append(sizeChart(health.sizes));
  const ingestion = table('Ingestion on this node', ['Received', 'Stored', 'Duplicate', 'Rejected', 'Conflict'],
    [[n.received, n.stored, n.duplicate, n.rejected, n.conflict].map(String)]);
  main.append(h('section', { class: 'card' }, ingestion,
    h('p', { class: 'muted' }, `Counted by node ${n.node} since it started `, when(n.since), '; other nodes count their own.')));
  const steps = h('ol', { class: 'steps', id: 'watch' });
  main.append(h('section', { class: 'card' }, h('h2', {}, 'Consistency watch'),
    h('p', { class: 'muted' }, 'The current checkpoint, checked in this page against the log key and against the last checkpoint this browser verified.'), steps));
  await watchLog(tenant, (ok, title, detail) => steps.append(stepItem(ok, title, detail)));
  const rejections = await get('/v1/events', { type: 'evident.auth.failed', limit: 100 }).catch(() => null);
  if (rejections) main.append(h('p', {}, 'Failed authentications recorded (latest 100 shown in search): ',
    link(`${route('search')}?q=${encodeURIComponent('type:evident.auth.failed')}`, String(rejections.events.length))));
}

/** Tree size over time: a line over the samples' times, and a table of the same numbers. */
function sizeChart(samples) {
  if (!samples.length) return h('p', { class: 'muted' }, 'The log is empty.');
  const times = samples.map((x) => new Date(x.at).getTime());
  const [t0, t1] = [times[0], Math.max(times.at(-1), times[0] + 1)];
  const max = Math.max(1, ...samples.map((x) => x.tree_size));
  const points = samples.map((x, i) => `${(10 + ((times[i] - t0) / (t1 - t0)) * 480).toFixed(1)},${(110 - (x.tree_size / max) * 100).toFixed(1)}`).join(' ');
  return h('figure', { class: 'card' }, h('figcaption', {}, 'Tree size over time'),
    s('svg', { viewBox: '0 0 500 120', role: 'img', class: 'bars', 'aria-label': `Tree size from ${samples[0].tree_size} to ${samples.at(-1).tree_size}` },
      s('polyline', { points, class: 'line' })),
    h('details', {}, h('summary', {}, 'The numbers'),
      table('Tree size over time', ['Sequenced at', 'Tree size'], samples.map((x) => [when(x.at), String(x.tree_size)]))));
}
