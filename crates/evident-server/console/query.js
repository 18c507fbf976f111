// The search box's language, as in GitHub's audit log: space-separated `qualifier:value` terms.
//   actor:agent-7 action:update subject:cus_00042 type:customer.* outcome:failure
//   after:2026-11-01 before:2026-12-01T12:00 source://crm.example.com target:customer/cus_1
// `type:` may end in `*` (a prefix: the server answers every type that begins with it); dates
// without a zone are the viewer's local time. Values with spaces are quoted: reason is not searchable.

export const QUALIFIERS = ['actor', 'action', 'subject', 'type', 'outcome', 'source', 'target', 'after', 'before'];
export const ACTIONS = ['create', 'read', 'update', 'delete', 'list', 'search', 'export', 'login', 'logout',
  'grant', 'revoke', 'configure', 'other'];
export const OUTCOMES = ['success', 'failure', 'unknown'];

function tokens(text) {
  const found = [];
  const pattern = /(\w+):(?:"([^"]*)"|(\S+))|"([^"]*)"|(\S+)/g;
  for (const m of text.matchAll(pattern)) {
    if (m[1]) found.push({ name: m[1].toLowerCase(), value: m[2] ?? m[3] });
    else found.push({ name: null, value: m[4] ?? m[5] });
  }
  return found;
}

function instant(value, name) {
  const text = /^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00` : value;
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw new Error(`${name}: "${value}" is not a date (use 2026-11-01 or 2026-11-01T09:30)`);
  return date.toISOString();
}

/**
 * Parses a query: answers { params (for GET /v1/events), terms } or throws an Error naming the
 * term at fault.
 */
export function parse(text) {
  const params = {};
  const terms = [];
  for (const { name, value } of tokens(text.trim())) {
    if (!name) throw new Error(`"${value}": use a qualifier (${QUALIFIERS.map((q) => `${q}:`).join(' ')})`);
    if (!value) throw new Error(`${name}: needs a value`);
    switch (name) {
      case 'actor': case 'subject': case 'source': params[name] = value; break;
      case 'action':
        if (!ACTIONS.includes(value)) throw new Error(`action: "${value}" is not one of ${ACTIONS.join(', ')}`);
        params.action = value; break;
      case 'outcome':
        if (!OUTCOMES.includes(value)) throw new Error(`outcome: "${value}" is not one of ${OUTCOMES.join(', ')}`);
        params.outcome = value; break;
      case 'type':
        if (value.slice(0, -1).includes('*') || value === '*') throw new Error('type: only a trailing * is allowed, after at least one character');
        params.type = value; break;
      case 'target': {
        const cut = value.indexOf('/');
        if (cut < 1 || cut === value.length - 1) throw new Error('target: use target:TYPE/ID');
        params.target_type = value.slice(0, cut); params.target_id = value.slice(cut + 1); break;
      }
      case 'after': params.from = instant(value, name); break;
      case 'before': params.to = instant(value, name); break;
      default: throw new Error(`${name}: unknown qualifier (known: ${QUALIFIERS.join(', ')})`);
    }
    terms.push({ name, value });
  }
  return { params, terms };
}

/** The query text of terms (for chips that remove one term). */
export function unparse(terms) {
  return terms.map(({ name, value }) => `${name}:${/\s/.test(value) ? `"${value}"` : value}`).join(' ');
}
