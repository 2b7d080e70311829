// The console's entry point: the session (token), the live stream, polling
// of /status, /diffs/summary and /releases, and the three tabs.
import { followDiffs, getJson, post, session, Unauthorized } from './api.js';
import { History } from './chart.js';
import { Filters, findingsOf, LiveList, renderFindings } from './differences.js';
import { fill, h } from './dom.js';
import { renderOverview } from './overview.js';
import { renderPair } from './pair.js';
import { renderReleases } from './releases.js';

const POLL_MS = 2000;
const TABS = ['overview', 'differences', 'releases'];
const $ = (id) => document.getElementById(id);

const state = {
  status: undefined,
  summary: undefined,
  releases: undefined,
  message: undefined,
  /** The gateway refused us without a token at least once. */
  tokenRequired: false,
  shown: false,
  stream: undefined,
  timer: undefined,
  /** Counts pair requests, so only the latest one shows. */
  pairRequests: 0,
};
const rates = new History(5 * 60 * 1000);

const filters = new Filters({ route: $('filter-route'), endpoint: $('filter-endpoint'), kind: $('filter-kind') }, () => {
  live.rebuild();
  renderDifferences();
});
const live = new LiveList({ body: $('live'), count: $('live-count'), state: $('stream-state'), filters, open: openPair });

function setConnection(text, tone) {
  const el = $('connection');
  el.textContent = text;
  el.className = `connection ${tone}`;
}

function showTab(name) {
  if (!TABS.includes(name)) name = 'overview';
  for (const button of $('tabs').querySelectorAll('button')) button.setAttribute('aria-selected', String(button.dataset.tab === name));
  for (const tab of TABS) $(tab).hidden = tab !== name;
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
  if (name === 'differences' && state.summary) renderDifferences();
}

function stop() {
  state.stream?.stop();
  state.stream = undefined;
  clearTimeout(state.timer);
  state.timer = undefined;
}

/** With a token required and none (or a wrong one) given, nothing but the form shows. */
function showLogin(error) {
  stop();
  state.shown = false;
  state.tokenRequired = true;
  session.token = '';
  $('tabs').hidden = true;
  for (const tab of TABS) {
    $(tab).hidden = true;
  }
  // Drop whatever an earlier session had shown.
  $('overview').replaceChildren();
  $('releases').replaceChildren();
  $('findings').replaceChildren();
  $('pair').hidden = true;
  $('pair').replaceChildren();
  $('live').replaceChildren();
  $('forget-token').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = error ?? '';
  setConnection('token needed', 'warn');
  $('token').focus();
}

function start() {
  stop();
  $('login').hidden = true;
  setConnection('connecting…', '');
  state.stream = followDiffs({
    replay: 200,
    onOpen: () => {
      setConnection('live', 'good');
      if (!state.shown) {
        state.shown = true;
        $('tabs').hidden = false;
        $('forget-token').hidden = !session.token;
        showTab(location.hash.slice(1));
        void poll();
      }
    },
    onEvent: (event) => live.add(event),
    onLag: (skipped) => live.lag(skipped),
    onRefused: (err) => {
      if (err instanceof Unauthorized) showLogin(session.token ? 'The gateway refused that token.' : '');
      else setConnection(`stream refused: ${err.message}`, 'bad');
    },
    onDown: () => setConnection('reconnecting…', 'warn'),
  });
}

async function poll() {
  clearTimeout(state.timer);
  try {
    const [status, summary, releases] = await Promise.all([getJson('/status'), getJson('/diffs/summary?top=50'), getJson('/releases')]);
    state.status = status;
    state.summary = summary;
    state.releases = releases.releases;
    const now = Date.now();
    for (const route of status.routes) for (const b of route.backends) rates.add(`${route.name}\u0000${b.upstream}`, now, b.rps);
    render();
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin('The gateway refused the token.');
    setConnection(`cannot read the admin API: ${err.message}`, 'bad');
  }
  if (state.shown) state.timer = setTimeout(poll, POLL_MS);
}

function canChange() {
  return !state.tokenRequired || Boolean(session.token);
}

function render() {
  fill($('overview'), renderOverview(state.status, state.summary, state.releases, rates));
  renderDifferences();
  renderReleaseTab();
}

function renderDifferences() {
  fill($('findings'), renderFindings(state.summary, filters, openPair));
  if (filters.dirty) filters.refreshOptions();
  // The first time there is something to see, show the top finding's pair.
  const top = findingsOf(state.summary).find((row) => row.verdict !== 'noise');
  if (top && state.pairRequests === 0 && !$('differences').hidden) void openPair({ finding: top, auto: true });
}

function renderReleaseTab() {
  fill($('releases'), renderReleases(state.releases, { canChange: canChange(), act, message: state.message }));
}

async function act(route, action) {
  try {
    const view = await post(`/releases/${encodeURIComponent(route)}/${action}`);
    state.message = { tone: 'good', text: `${route}: ${action} done; now ${view.status} at ${view.step}` };
  } catch (err) {
    state.message =
      err instanceof Unauthorized
        ? { tone: 'bad', text: `${route}: ${action} refused: the admin token is missing or wrong` }
        : { tone: 'bad', text: `${route}: ${action} failed: ${err.message}` };
  }
  renderReleaseTab();
  void poll();
}

async function openPair({ event, finding, auto = false }) {
  const request = ++state.pairRequests;
  const panel = $('pair');
  panel.hidden = false;
  panel.replaceChildren(h('p', { class: 'muted' }, 'loading the example pair…'));
  const path = event
    ? `/diffs/examples/${encodeURIComponent(event.id)}`
    : `/diffs/examples?${new URLSearchParams({ route: finding.route, shadow: finding.shadow, kind: finding.kind, path: finding.path })}`;
  try {
    const pair = await getJson(path);
    if (request !== state.pairRequests) return;
    fill(panel, renderPair(pair, closePair));
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin('The gateway refused the token.');
    if (request !== state.pairRequests) return;
    panel.replaceChildren(h('p', { class: 'notice warn' }, err.message), h('button', { type: 'button', onclick: closePair }, 'Close'));
  }
  if (!auto) panel.scrollIntoView({ block: 'nearest' });
}

function closePair() {
  $('pair').hidden = true;
  $('pair').replaceChildren();
}

$('tabs').addEventListener('click', (e) => {
  const tab = e.target.closest('button')?.dataset.tab;
  if (tab) showTab(tab);
});
$('pause-stream').addEventListener('click', () => {
  live.setPaused(!live.paused);
  $('pause-stream').textContent = live.paused ? 'Resume' : 'Pause';
  $('pause-stream').setAttribute('aria-pressed', String(live.paused));
});
$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('token');
  session.token = input.value.trim();
  input.value = '';
  start();
});
$('forget-token').addEventListener('click', () => {
  session.token = '';
  location.reload();
});

start();
