// Small DOM helpers: elements from data (never HTML strings, so event data cannot inject markup),
// SVG, and times shown in the viewer's zone with UTC on hover.

const SVG = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.setAttribute('class', value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h('a', {href: '#/x'}, 'text', child...). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

/** A time in the viewer's zone, with the exact UTC time on hover. */
export function when(iso) {
  if (!iso) return h('span', {}, '-');
  const date = new Date(iso);
  const local = date.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  return h('time', { datetime: iso, title: `${date.toISOString().replace('.000Z', 'Z')} UTC` }, local);
}

/** Replaces the main area's content and moves focus there (for keyboard and screen readers). */
export function show(title, ...children) {
  const main = document.getElementById('main');
  main.replaceChildren(h('h1', {}, title), ...children);
  document.title = `${title} · Evident`;
  main.focus({ preventScroll: true });
  return main;
}

/** A status line that screen readers announce. */
export function status(text, kind = 'info') {
  return h('p', { class: `status ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** A labelled input: [label, input]. */
export function field(label, attrs) {
  const id = attrs.id || `f-${attrs.name}`;
  return h('div', { class: 'field' }, h('label', { for: id }, label), h(attrs.tag || 'input', { ...attrs, tag: null, id }));
}

/** A table from rows: headers, and per row a list of cells. */
export function table(caption, headers, rows) {
  return h('table', {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell))))));
}

export function link(href, text) {
  return h('a', { href }, text);
}

/** A route fragment with encoded parts: route('event', id) -> '#/event/<id>'. */
export function route(...parts) {
  return `#/${parts.map(encodeURIComponent).join('/')}`;
}
