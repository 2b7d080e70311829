// One differing pair side by side: status, headers and body of the primary
// and the shadow, JSON pretty-printed with the differing nodes highlighted
// and the nodes that differ only as noise greyed.
import { h, badge, clock, millis } from './dom.js';

const escapeSegment = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** Which marks name a place: `kind` plus path (pointer, header name, "status"). */
class Marks {
  constructor(example) {
    this.differing = new Set(example.differing.map((m) => `${m.kind}\u0000${m.path}`));
    this.noise = new Set(example.noise.map((m) => `${m.kind}\u0000${m.path}`));
  }
  classOf(kind, path) {
    const key = `${kind}\u0000${path}`;
    return this.differing.has(key) ? 'diff' : this.noise.has(key) ? 'noise' : '';
  }
}

export function renderPair({ event, example }, close) {
  const marks = new Marks(example);
  return [
    h(
      'header',
      null,
      h('h3', null, h('code', null, `${event.method} ${event.path}`)),
      h('button', { type: 'button', class: 'close', onclick: close, 'aria-label': 'close the pair' }, 'Close'),
    ),
    h(
      'p',
      { class: 'small' },
      `${clock(event.time)} · route ${event.route} · request id `,
      h('code', { class: 'request-id' }, event.requestId),
      ` · ${event.differenceCount} differences, ${event.noise} masked as noise`,
      event.truncated ? ' · bodies cut at diff.maxBodyBytes' : '',
      event.limited ? ` · comparison stopped at its ${event.limited} bound` : '',
    ),
    h('p', { class: 'legend small' }, h('span', { class: 'diff' }, 'differs'), ' ', h('span', { class: 'noise' }, 'noise (differs on the baseline too)')),
    h('div', { class: 'sides' }, side('primary', example.primary, marks), side('shadow', example.shadow, marks)),
  ];
}

function side(role, s, marks) {
  const headerRows = Object.entries(s.headers).map(([name, value]) =>
    h('tr', { class: marks.classOf('header', name), 'data-header': name }, h('th', null, name), h('td', null, value)),
  );
  return h(
    'div',
    { class: `side ${role}`, 'data-side': role },
    h('h4', null, `${role}: ${s.upstream}`),
    h(
      'p',
      null,
      h('span', { class: `status ${marks.classOf('status', 'status') || marks.classOf('error', 'error')}` }, s.status === null ? 'no answer' : `HTTP ${s.status}`),
      ` · ${millis(s.latencyMs)}`,
      s.clipped ? ' · ' : '',
      s.clipped ? badge('clipped', 'warn') : '',
      s.note ? ` · ${s.note}` : '',
    ),
    // Open when a header really differs; otherwise one click away, so the body shows first.
    h(
      'details',
      { open: Object.keys(s.headers).some((name) => marks.classOf('header', name) === 'diff') },
      h('summary', null, `headers (${headerRows.length})`),
      h('table', { class: 'headers' }, h('tbody', null, headerRows)),
    ),
    h('div', { class: 'body' }, body(s.body, marks)),
  );
}

function body(b, marks) {
  switch (b.format) {
    case 'json':
      return h('div', { class: 'json' }, jsonNode(b.value, '', undefined, true, marks));
    case 'text':
      return h('pre', { class: `text ${marks.classOf('body', '')}`, 'data-pointer': '' }, b.text);
    case 'binary':
      return h('p', { class: marks.classOf('body', '') }, `binary body, ${b.bytes} bytes, sha256 ${b.sha256}`);
    case 'empty':
      return h('p', { class: 'muted' }, 'empty body');
    case 'none':
      return h('p', { class: 'diff' }, `no answer: ${b.error}`);
    default:
      return h('p', { class: 'muted' }, 'body not shown');
  }
}

/** A JSON node as nested blocks; each carries its JSON Pointer. */
function jsonNode(value, pointer, key, last, marks) {
  const mark = marks.classOf('body', pointer);
  const node = h('div', { class: `jn ${mark}`, 'data-pointer': pointer });
  const label = key === undefined ? [] : [h('span', { class: 'jk' }, JSON.stringify(key)), ': '];
  const comma = last ? '' : ',';
  if (value !== null && typeof value === 'object') {
    const array = Array.isArray(value);
    const entries = array ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    const [open, close] = array ? ['[', ']'] : ['{', '}'];
    if (entries.length === 0) {
      node.append(h('div', { class: 'jl' }, label, open + close + comma));
      return node;
    }
    const children = h('div', { class: 'jc' });
    entries.forEach(([segment, child], i) => {
      children.append(jsonNode(child, `${pointer}/${escapeSegment(segment)}`, array ? undefined : segment, i === entries.length - 1, marks));
    });
    node.append(h('div', { class: 'jl' }, label, open), children, h('div', { class: 'jl' }, close + comma));
    return node;
  }
  node.append(h('div', { class: 'jl' }, label, h('span', { class: `jv ${value === null ? 'null' : typeof value}` }, JSON.stringify(value)), comma));
  return node;
}
