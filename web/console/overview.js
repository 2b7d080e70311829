// Overview: each route with its backends (weights, canary share, live
// rates), its shadow targets (outcomes, diff rate, latency per side) and
// its release step with a time chart.
import { h, badge, millis, number, percent, table, verdictTone } from './dom.js';
import { timeChart } from './chart.js';
import { releaseChart } from './releases.js';

const WINDOW_MS = 5 * 60 * 1000;

export function renderOverview(status, summary, releases, history) {
  if (!status) return [h('p', { class: 'muted' }, 'waiting for /status…')];
  const latency = new Map();
  for (const route of summary?.routes ?? []) {
    for (const s of route.shadows ?? []) latency.set(`${route.route}\u0000${s.shadow}`, s);
  }
  const byRoute = new Map((releases ?? []).map((r) => [r.route, r]));
  return [
    h(
      'p',
      { class: 'muted small' },
      `config generation ${status.generation} · rates over the last ${number(status.windowSeconds, 0)} s`,
      status.replicas ? ` · ${status.replicas} replicas` : '',
    ),
    h('div', { class: 'cards' }, status.routes.map((route) => routeCard(route, latency, byRoute.get(route.name), history))),
  ];
}

function matchText(match) {
  const parts = [];
  if (match.methods) parts.push(match.methods.join(','));
  parts.push(match.prefix ?? '/');
  if (match.host) parts.push(`host ${match.host}`);
  for (const [k, v] of Object.entries(match.headers ?? {})) parts.push(`${k}: ${v}`);
  return parts.join(' ');
}

function routeCard(route, latency, release, history) {
  const rpsSeries = route.backends.map((b, i) => ({
    name: `${b.upstream} req/s`,
    points: history.get(`${route.name}\u0000${b.upstream}`),
    className: `s${i % 4}`,
  }));
  const backends = table(
    ['backend', 'share of traffic', 'req/s', '5xx', 'p50', 'p99'],
    route.backends.map((b, i) =>
      h(
        'tr',
        null,
        h('td', null, h('span', { class: `swatch s${i % 4}` }), b.upstream),
        h('td', { class: 'num', title: `weight ${b.weight}` }, h('strong', null, percent(b.share, 0))),
        h('td', { class: 'num' }, number(b.rps, 1)),
        h('td', { class: 'num' }, percent(b.errorRate)),
        h('td', { class: 'num', title: `mean ${millis(b.meanLatencyMs)}` }, millis(b.p50Ms ?? b.meanLatencyMs)),
        h('td', { class: 'num' }, millis(b.p99Ms)),
      ),
    ),
    { class: 'grid-table' },
  );
  const shadows = route.shadows.length
    ? table(
        ['shadow', 'mirrored', 'copies/s', 'differ', 'p50 primary → shadow', 'p99 primary → shadow'],
        route.shadows.map((s) => {
          const l = latency.get(`${route.name}\u0000${s.upstream}`)?.latency;
          const outcomes = Object.entries(s.outcomes ?? {})
            .filter(([, n]) => n > 0)
            .map(([k, n]) => `${n} ${k}`)
            .join(', ');
          return h(
            'tr',
            null,
            h('td', null, s.upstream, h('div', { class: 'muted small' }, outcomes || 'no copies in the window')),
            h('td', { class: 'num' }, `${s.percent}%`),
            h('td', { class: 'num' }, number(s.rps, 1)),
            h('td', { class: 'num' }, `${percent(s.diffRate)} of ${s.compared}`),
            h('td', { class: 'num' }, `${millis(l?.primary?.p50Ms)} → ${millis(l?.shadow?.p50Ms)}`),
            h('td', { class: 'num' }, `${millis(l?.primary?.p99Ms)} → ${millis(l?.shadow?.p99Ms)}`),
          );
        }),
        { class: 'grid-table' },
      )
    : null;
  return h(
    'article',
    { class: 'card', 'data-route': route.name },
    h(
      'header',
      null,
      h('h3', null, route.name),
      h('code', null, matchText(route.match)),
      route.sticky ? badge(`sticky by ${route.sticky}`) : null,
      route.baseline ? badge(`baseline ${route.baseline}`) : null,
    ),
    backends,
    shadows,
    route.shadows.map((s) => regressions(latency.get(`${route.name}\u0000${s.upstream}`))),
    h(
      'div',
      { class: 'charts' },
      h('figure', null, timeChart({ series: rpsSeries, windowMs: WINDOW_MS, unit: '/s', label: `${route.name} requests per second` }), h('figcaption', null, 'requests/s per backend, since this page opened')),
      release
        ? h(
            'figure',
            null,
            releaseChart(release, WINDOW_MS),
            h('figcaption', null, `release of ${release.candidate}: `, badge(`${release.step} · ${release.status}`, verdictTone(release.status)), ` ${percent(release.weight / 100, 0)} of traffic`),
          )
        : null,
    ),
  );
}

/** The target's findings judged regressions, most differing first (the summary's order). */
function regressions(target) {
  const found = (target?.paths ?? []).filter((p) => p.verdict === 'regression');
  if (!target || found.length === 0) return null;
  return h(
    'p',
    { class: 'small' },
    badge(`${found.length} regression${found.length === 1 ? '' : 's'}`, 'bad'),
    ` on ${target.shadow}: `,
    found.slice(0, 4).map((p, i) => [i ? ', ' : '', h('code', null, p.kind === 'body' ? p.path || '(body)' : `${p.kind} ${p.path}`), ` ${percent(p.rate, 0)}`]),
    found.length > 4 ? ` and ${found.length - 4} more` : '',
    ' — details under Differences',
  );
}
