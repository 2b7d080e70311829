// Differences: the findings of /diffs/summary (ranked as `gatewayctl diff
// summary` ranks them) and the live /diffs stream as a bounded list, both
// filtered by route, endpoint and kind; a click opens an example pair.
import { h, badge, clock, fill, interval, percent, table, verdictTone } from './dom.js';

/** Live differences kept (and rows shown) at most. */
export const MAX_LIVE = 1000;

export class Filters {
  constructor(selects, onChange) {
    this.selects = selects;
    this.known = { route: new Set(), endpoint: new Set(), kind: new Set(['status', 'header', 'body', 'error']) };
    for (const select of Object.values(selects)) select.addEventListener('change', onChange);
    this.refreshOptions();
  }
  get route() {
    return this.selects.route.value;
  }
  get endpoint() {
    return this.selects.endpoint.value;
  }
  get kind() {
    return this.selects.kind.value;
  }
  /** Remembers values seen, so the selects offer them. */
  learn(kind, value) {
    if (!value || this.known[kind].has(value)) return;
    this.known[kind].add(value);
    this.dirty = true;
  }
  refreshOptions() {
    this.dirty = false;
    for (const [kind, select] of Object.entries(this.selects)) {
      const chosen = select.value;
      const values = [...this.known[kind]].sort();
      // Endpoints exist only when the gateway reports them.
      select.closest('label').hidden = values.length === 0;
      if (select.options.length === values.length + 1) continue;
      fill(select, [h('option', { value: '' }, 'all'), values.map((v) => h('option', { value: v }, v))]);
      select.value = values.includes(chosen) ? chosen : '';
    }
  }
  matchesEvent(event) {
    if (this.route && event.route !== this.route) return false;
    if (this.endpoint && endpointOf(event) !== this.endpoint) return false;
    if (this.kind && !event.differences.some((d) => d.kind === this.kind)) return false;
    return true;
  }
  matchesFinding(row) {
    if (this.route && row.route !== this.route) return false;
    if (this.endpoint && row.endpoint !== this.endpoint) return false;
    if (this.kind && row.kind !== this.kind) return false;
    return true;
  }
}

function endpointOf(event) {
  return event.endpoint ?? event.differences.find((d) => d.endpoint)?.endpoint;
}

/** Summary rows, flattened in the summary's order (each target's paths come ranked). */
export function findingsOf(summary) {
  const rows = [];
  for (const route of summary?.routes ?? []) {
    for (const s of route.shadows ?? []) {
      for (const p of s.paths ?? []) rows.push({ route: route.route, shadow: s.shadow, compared: s.compared, ...p });
    }
  }
  return rows;
}

export function renderFindings(summary, filters, open) {
  const rows = findingsOf(summary);
  for (const row of rows) {
    filters.learn('route', row.route);
    filters.learn('endpoint', row.endpoint);
    filters.learn('kind', row.kind);
  }
  const shown = rows.filter((row) => filters.matchesFinding(row));
  const withEndpoints = rows.some((row) => row.endpoint);
  const targets = (summary?.routes ?? []).flatMap((r) => (r.shadows ?? []).map((s) => ({ route: r.route, ...s })));
  const overview = targets.map((t) =>
    h(
      'p',
      { class: 'target small' },
      h('strong', null, `${t.route} → ${t.shadow}`),
      `: ${t.compared} compared, ${t.differing} differ (${percent(t.diffRate)}, 95% ${interval(t.diffRateCi)})`,
      t.baseline ? `, baseline ${t.baseline}: ${t.noiseMasked} differences masked as noise` : ', no baseline',
      t.dropped ? `, ${t.dropped} not compared (queue full)` : '',
    ),
  );
  const endpointTables = targets.filter((t) => Array.isArray(t.endpoints) && t.endpoints.length > 0).map((t) => endpointTable(t));
  if (rows.length === 0) return [overview, endpointTables, h('p', { class: 'muted' }, 'No differences found yet.')];
  const header = ['route → shadow', ...(withEndpoints ? ['endpoint'] : []), 'kind', 'path', 'verdict', 'rate', '95% interval', 'affected', 'noise'];
  return [
    overview,
    endpointTables,
    table(
      header,
      shown.map((row) =>
        h(
          'tr',
          {
            class: `finding ${row.verdict === 'noise' ? 'is-noise' : ''}`,
            tabindex: 0,
            'data-kind': row.kind,
            'data-path': row.path,
            onclick: () => open({ finding: row }),
            onkeydown: (e) => e.key === 'Enter' && open({ finding: row }),
          },
          h('td', null, `${row.route} → ${row.shadow}`),
          withEndpoints ? h('td', null, row.endpoint ?? '') : null,
          h('td', null, badge(row.kind)),
          h('td', null, h('code', null, pathLabel(row))),
          h('td', null, badge(row.verdict, verdictTone(row.verdict))),
          h('td', { class: 'num' }, percent(row.rate)),
          h('td', { class: 'num' }, interval(row.ci)),
          h('td', { class: 'num' }, `${row.differing} of ${row.compared}`),
          h('td', { class: 'num' }, row.noise || row.masked ? `${row.noise} (${percent(row.noiseRate)}), ${row.masked} masked` : '0'),
        ),
      ),
      { class: 'grid-table findings' },
    ),
  ];
}

function pathLabel(row) {
  if (row.kind === 'body') return row.path === '' ? '(whole body)' : row.path;
  return row.path;
}

/** Per-endpoint rows, when the gateway reports them. */
function endpointTable(target) {
  return h(
    'div',
    { class: 'endpoints' },
    h('h3', null, `Endpoints of ${target.route} → ${target.shadow}`),
    table(
      ['endpoint', 'compared', 'differing', 'rate', 'verdict'],
      target.endpoints.map((e) =>
        h(
          'tr',
          null,
          h('td', null, h('code', null, String(e.endpoint ?? e.template ?? e.name ?? ''))),
          h('td', { class: 'num' }, e.compared ?? '–'),
          h('td', { class: 'num' }, e.differing ?? '–'),
          h('td', { class: 'num' }, percent(e.diffRate ?? e.rate)),
          h('td', null, e.verdict ? badge(e.verdict, verdictTone(e.verdict)) : '–'),
        ),
      ),
      { class: 'grid-table' },
    ),
  );
}

/**
 * The live list: newest first, at most MAX_LIVE events and rows; rows are
 * added once per animation frame, so a burst of events costs one layout,
 * and rows out of view are not rendered (content-visibility).
 */
export class LiveList {
  constructor({ body, count, state, filters, open }) {
    this.body = body;
    this.count = count;
    this.state = state;
    this.filters = filters;
    this.open = open;
    this.events = [];
    this.queued = [];
    this.pending = [];
    this.paused = false;
    this.frame = 0;
    this.skipped = 0;
  }

  add(event) {
    this.filters.learn('route', event.route);
    this.filters.learn('endpoint', endpointOf(event));
    for (const d of event.differences) this.filters.learn('kind', d.kind);
    if (this.paused) {
      this.pending.push(event);
      if (this.pending.length > MAX_LIVE) this.pending.shift();
      this.showState();
      return;
    }
    this.keep(event);
  }

  keep(event) {
    this.events.push(event);
    if (this.events.length > MAX_LIVE) this.events.shift();
    this.queued.push(event);
    if (this.queued.length > MAX_LIVE) this.queued.shift();
    this.frame ||= requestAnimationFrame(() => this.flush());
  }

  lag(skipped) {
    this.skipped += skipped;
    this.showState();
  }

  setPaused(paused) {
    this.paused = paused;
    if (!paused) {
      const pending = this.pending;
      this.pending = [];
      for (const event of pending) this.keep(event);
    }
    this.showState();
  }

  flush() {
    this.frame = 0;
    if (this.filters.dirty) this.filters.refreshOptions();
    const fragment = document.createDocumentFragment();
    for (let i = this.queued.length - 1; i >= 0; i--) {
      const event = this.queued[i];
      if (this.filters.matchesEvent(event)) fragment.append(this.row(event));
    }
    this.queued = [];
    this.body.prepend(fragment);
    while (this.body.childElementCount > MAX_LIVE) this.body.lastElementChild.remove();
    this.showState();
  }

  /** After a filter change: rebuild the rows from the events kept. */
  rebuild() {
    this.body.replaceChildren();
    this.queued = [...this.events];
    this.flush();
  }

  showState() {
    this.count.textContent = `${this.body.childElementCount} shown, ${this.events.length} kept (at most ${MAX_LIVE})`;
    const parts = [];
    if (this.paused) parts.push(`paused: ${this.pending.length} new waiting`);
    if (this.skipped) parts.push(`${this.skipped} skipped by the gateway (this page read too slowly)`);
    this.state.textContent = parts.join(' · ');
  }

  row(event) {
    const kinds = [...new Set(event.differences.map((d) => d.kind))];
    const first = event.differences.slice(0, 3).map((d) => (d.kind === 'body' ? d.path || '(body)' : d.kind === 'header' ? `header ${d.path}` : d.kind));
    const more = event.differenceCount - first.length;
    const open = () => this.open({ event });
    return h(
      'div',
      { class: 'row', role: 'row', 'data-id': event.id, tabindex: 0, onclick: open, onkeydown: (e) => e.key === 'Enter' && open() },
      h('span', { role: 'cell' }, clock(event.time)),
      h('span', { role: 'cell' }, `${event.route} → ${event.shadow.upstream}`),
      h('span', { role: 'cell', class: 'request' }, h('code', null, `${event.method} ${event.path}`)),
      h('span', { role: 'cell', class: 'num' }, `${event.primary.status ?? '–'} → ${event.shadow.status ?? 'none'}`),
      h('span', { role: 'cell', class: 'kinds' }, kinds.map((k) => badge(k)), ' ', h('code', null, first.join(', ')), more > 0 ? ` +${more}` : ''),
      h('span', { role: 'cell', class: 'num' }, event.noise),
      h('span', { role: 'cell' }, h('code', { class: 'small' }, event.requestId)),
    );
  }
}
