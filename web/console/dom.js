// Building the page from data without ever parsing markup: every value
// becomes a text node (or an attribute set with setAttribute), so a hostile
// response body shows as text and cannot run.

/** An element: props are attributes ("on…" adds a listener); children are nodes or text. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  appendAll(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element, the same way. */
export function svg(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  appendAll(el, children);
  return el;
}

function setProps(el, props) {
  if (!props) return;
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

// Figures as people read them.

export function percent(value, digits = 1) {
  return typeof value === 'number' && Number.isFinite(value) ? `${(value * 100).toFixed(digits)}%` : '–';
}

export function interval(ci) {
  return Array.isArray(ci) && ci.length === 2 ? `${percent(ci[0])} – ${percent(ci[1])}` : '–';
}

export function number(value, digits = 0) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '–';
}

export function millis(value) {
  return typeof value === 'number' && Number.isFinite(value) ? `${value < 10 ? value.toFixed(1) : Math.round(value)} ms` : '–';
}

export function clock(time) {
  const date = new Date(time);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString([], { hour12: false });
}

export function duration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** A small labelled value, e.g. a verdict or a status. */
export function badge(text, tone) {
  return h('span', { class: `badge ${tone ?? ''}` }, text);
}

export function verdictTone(verdict) {
  switch (verdict) {
    case 'regression':
    case 'fail':
    case 'rolled-back':
      return 'bad';
    case 'noise':
    case 'paused':
    case 'wait':
      return 'warn';
    case 'pass':
    case 'promoted':
    case 'completed':
    case 'running':
      return 'good';
    default:
      return '';
  }
}

/** A table from a header row and rows of cells. */
export function table(headers, rows, props) {
  return h('table', props ?? {}, h('thead', null, h('tr', null, headers.map((x) => h('th', null, x)))), h('tbody', null, rows));
}

/** Replaces an element's children with nodes (nested arrays flattened, empty entries skipped). */
export function fill(el, nodes) {
  el.replaceChildren(...[nodes].flat(Infinity).filter((n) => n !== undefined && n !== null && n !== false));
}
