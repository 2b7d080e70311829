// Releases: the step timeline, each gate against its limit, the evidence,
// the reason for the last decision, the history, and the controls.
import { h, badge, clock, duration, number, percent, table, verdictTone } from './dom.js';
import { timeChart } from './chart.js';

const CHART_WINDOW_MS = 10 * 60 * 1000;

/** The candidate's traffic share a position label stands for ("25%", "25% (paused)", "shadow", ...). */
function weightOf(label) {
  if (label === 'promoted') return 100;
  const match = /^(\d+(?:\.\d+)?)%/.exec(label ?? '');
  return match ? Number(match[1]) : 0;
}

/** The candidate's share over time, from the release's own history (survives a page reload). */
export function releaseChart(release, windowMs = CHART_WINDOW_MS) {
  const points = (release.history ?? []).map((t) => [t.at, weightOf(t.to)]);
  return timeChart({
    series: [{ name: `${release.candidate} share`, points, className: 'release', step: true }],
    windowMs,
    max: 100,
    unit: '%',
    label: `${release.route} release: candidate share over time`,
  });
}

const ACTIONS = [
  { action: 'pause', label: 'Pause', allowed: (s) => s === 'running' },
  { action: 'resume', label: 'Resume', allowed: (s) => s === 'paused' },
  { action: 'promote', label: 'Promote', allowed: (s) => s === 'running' || s === 'paused' },
  { action: 'rollback', label: 'Roll back', allowed: (s) => s === 'running' || s === 'paused', danger: true },
];

const CONFIRM = {
  pause: (r) => `Pause the release of ${r.candidate} on route ${r.route}? Traffic stays at ${r.step}.`,
  resume: (r) => `Resume the release of ${r.candidate} on route ${r.route}?`,
  promote: (r) => `Promote ${r.candidate} on route ${r.route} to 100% of traffic now, skipping the remaining steps?`,
  rollback: (r) => `Roll back route ${r.route}: send no traffic to ${r.candidate}?`,
};

/**
 * releases: GET /releases; canChange: whether state changes may be tried
 * (a token is at hand, or none is needed); act(route, action) performs one.
 */
export function renderReleases(releases, { canChange, act, message }) {
  if (!releases) return [h('p', { class: 'muted' }, 'waiting for /releases…')];
  if (releases.length === 0) {
    return [h('p', { class: 'muted' }, 'No route has a release block. Add one (', h('code', null, 'release: {candidate, steps, gates}'), ') to move traffic step by step.')];
  }
  return [
    message ? h('p', { class: `notice ${message.tone}`, role: 'status' }, message.text) : null,
    canChange ? null : h('p', { class: 'notice warn' }, 'Enter the admin token to steer releases.'),
    releases.map((r) => releaseCard(r, canChange, act)),
  ];
}

function releaseCard(r, canChange, act) {
  const buttons = ACTIONS.map((a) =>
    h(
      'button',
      {
        type: 'button',
        class: a.danger ? 'danger' : '',
        'data-action': a.action,
        disabled: !canChange || !a.allowed(r.status),
        title: canChange ? undefined : 'needs the admin token',
        onclick: () => {
          if (window.confirm(CONFIRM[a.action](r))) act(r.route, a.action);
        },
      },
      a.label,
    ),
  );
  const timeline = h(
    'ol',
    { class: 'timeline' },
    r.steps.map((step, i) => {
      const state = r.status === 'promoted' || r.status === 'completed' ? 'done' : i < r.stepIndex ? 'done' : i === r.stepIndex ? r.status : 'next';
      return h('li', { class: `step ${state}`, 'aria-current': i === r.stepIndex ? 'step' : undefined }, step);
    }),
  );
  const gates = table(
    ['gate', 'value', 'limit', 'status', 'detail'],
    (r.gates ?? []).map((g) =>
      h(
        'tr',
        null,
        h('td', null, g.gate),
        h('td', { class: 'num' }, gateFigure(g.gate, g.value)),
        h('td', { class: 'num' }, gateFigure(g.gate, g.limit)),
        h('td', null, badge(g.status, verdictTone(g.status))),
        h('td', { class: 'detail' }, g.detail),
      ),
    ),
    { class: 'grid-table' },
  );
  const history = table(
    ['at', 'from', 'to', 'reason'],
    [...(r.history ?? [])].reverse().slice(0, 8).map((t) => h('tr', null, h('td', null, clock(t.at)), h('td', null, t.from), h('td', null, t.to), h('td', { class: 'detail' }, t.reason))),
    { class: 'grid-table history' },
  );
  return h(
    'article',
    { class: 'card release', 'data-route': r.route },
    h(
      'header',
      null,
      h('h3', null, r.route, ' → ', r.candidate),
      badge(r.status, verdictTone(r.status)),
      badge(`verdict ${r.verdict}`, verdictTone(r.verdict)),
      r.controller === 'external' ? badge('external controller') : null,
    ),
    timeline,
    h(
      'dl',
      { class: 'facts' },
      h('dt', null, 'step'),
      h('dd', null, `${r.step} · ${percent(r.weight / 100, 0)} of traffic${r.shadow ? ', mirrored' : ''}`),
      h('dt', null, 'time in step'),
      h('dd', null, `${duration(r.timeInStepMs)} of at least ${duration(r.intervalMs)}`),
      h('dt', null, 'evidence'),
      h('dd', null, `${r.candidateRequests} of ${r.minRequests} ${r.step === 'shadow' ? 'compared pairs' : 'candidate requests'}`),
      h('dt', null, 'last decision'),
      h('dd', { class: 'reason' }, r.reason),
    ),
    h('div', { class: 'controls' }, buttons),
    h('div', { class: 'release-body' }, h('div', null, h('h4', null, 'Gates'), gates), h('figure', null, releaseChart(r), h('figcaption', null, 'candidate share over time'))),
    h('details', null, h('summary', null, 'History'), history),
  );
}

function gateFigure(gate, value) {
  if (typeof value !== 'number') return '–';
  return gate === 'latencyRatio' ? `× ${number(value, 2)}` : percent(value, 2);
}
