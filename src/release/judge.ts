/**
 * Judging one step of a release from the evidence gathered during it.
 *
 * Each gate is pass, fail, wait (not enough evidence either way) or n/a.
 * A gate fails only when the evidence says so with confidence (the interval
 * lies beyond the limit), and passes only when the estimate is within the
 * limit; nothing is judged before the step's minimum number of requests.
 * The step passes when its time is up and every gate passes; it fails the
 * moment any gate fails.
 */
import type { ReleaseConfig, ReleaseStep } from '../config/types.js';
import type { BackendEvidence, Evidence, RouteEvidence } from './evidence.js';
import { differenceLowerBound, histogramQuantile, mannWhitneyGreater, quantileBounds, scaleBinned, wilson } from './stats.js';

export type GateName = 'errorRate' | 'errorRateIncrease' | 'latencyRatio' | 'diffRate';
export type GateStatus = 'pass' | 'fail' | 'wait' | 'n/a';

export interface GateFigure {
  readonly gate: GateName;
  /** The measured figure (rate or ratio); null when there is none yet. */
  readonly value: number | null;
  readonly limit: number;
  readonly status: GateStatus;
  readonly detail: string;
}

export interface Judgement {
  readonly verdict: 'pass' | 'fail' | 'wait';
  readonly reason: string;
  readonly gates: readonly GateFigure[];
  /** Candidate requests (compared pairs in the shadow step) in the window. */
  readonly candidateRequests: number;
  readonly stableRequests: number;
  readonly elapsedMs: number;
}

/** Stable traffic below this cannot anchor a comparison (e.g. at 99 %). */
const MIN_STABLE_FOR_COMPARISON = 30;

export function judgeStep(
  step: ReleaseStep,
  release: ReleaseConfig,
  stableUpstreams: readonly string[],
  window: Evidence,
  routeName: string,
  elapsedMs: number,
): Judgement {
  const route: RouteEvidence = window.routes[routeName] ?? { backends: {}, comparisons: {} };
  const min = release.minRequests;
  const gates: GateFigure[] = [];
  let candidateRequests: number;
  let stableRequests = 0;

  if (step === 'shadow') {
    const c = route.comparisons[release.candidate] ?? { match: 0, diff: 0 };
    candidateRequests = c.match + c.diff;
    gates.push(rateGate('diffRate', c.diff, candidateRequests, release.gates.maxDiffRate, min, 'pairs differ'));
  } else {
    const candidate = route.backends[release.candidate] ?? { requests: 0, errors: 0, latency: [] };
    const stable = sumBackends(stableUpstreams.map((u) => route.backends[u]));
    candidateRequests = candidate.requests;
    stableRequests = stable.requests;
    gates.push(rateGate('errorRate', candidate.errors, candidate.requests, release.gates.maxErrorRate, min, 'answers were 5xx'));
    gates.push(increaseGate(candidate, stable, release.gates.maxErrorRateIncrease, min));
    gates.push(latencyGate(candidate, stable, window.bounds, release.gates.maxLatencyRatio, min));
  }

  const failed = gates.find((g) => g.status === 'fail');
  if (failed) {
    return { verdict: 'fail', reason: `${failed.gate}: ${failed.detail}`, gates, candidateRequests, stableRequests, elapsedMs };
  }
  if (candidateRequests < min) {
    const reason = `waiting for ${min - candidateRequests} more ${step === 'shadow' ? 'compared pairs' : 'candidate requests'} (${candidateRequests}/${min})`;
    return { verdict: 'wait', reason, gates, candidateRequests, stableRequests, elapsedMs };
  }
  const waiting = gates.find((g) => g.status === 'wait');
  if (waiting) return { verdict: 'wait', reason: `${waiting.gate}: ${waiting.detail}`, gates, candidateRequests, stableRequests, elapsedMs };
  if (elapsedMs < release.intervalMs) {
    const reason = `gates pass; ${Math.ceil((release.intervalMs - elapsedMs) / 1000)}s left in this step`;
    return { verdict: 'wait', reason, gates, candidateRequests, stableRequests, elapsedMs };
  }
  return { verdict: 'pass', reason: 'every gate passed', gates, candidateRequests, stableRequests, elapsedMs };
}

function sumBackends(list: (BackendEvidence | undefined)[]): BackendEvidence {
  const out: BackendEvidence = { requests: 0, errors: 0, latency: [] };
  for (const b of list) {
    if (!b) continue;
    out.requests += b.requests;
    out.errors += b.errors;
    b.latency.forEach((c, i) => (out.latency[i] = (out.latency[i] ?? 0) + c));
  }
  return out;
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

function rateGate(gate: GateName, hits: number, trials: number, limit: number, min: number, what: string): GateFigure {
  const value = trials > 0 ? hits / trials : null;
  if (trials < min) {
    return { gate, value, limit, status: 'wait', detail: `${hits}/${trials} ${what}; judged from ${min}` };
  }
  const ci = wilson(hits, trials);
  const figure = `${pct(value!)} of ${trials} ${what} (95% CI ${pct(ci.low)}-${pct(ci.high)}), limit ${pct(limit)}`;
  if (ci.low > limit) return { gate, value, limit, status: 'fail', detail: figure };
  if (value! <= limit) return { gate, value, limit, status: 'pass', detail: figure };
  return { gate, value, limit, status: 'wait', detail: `${figure}: not yet conclusive` };
}

function increaseGate(candidate: BackendEvidence, stable: BackendEvidence, limit: number, min: number): GateFigure {
  const gate: GateName = 'errorRateIncrease';
  if (stable.requests < MIN_STABLE_FOR_COMPARISON) {
    return { gate, value: null, limit, status: 'n/a', detail: `only ${stable.requests} stable requests to compare with` };
  }
  const pc = candidate.requests > 0 ? candidate.errors / candidate.requests : 0;
  const ps = stable.errors / stable.requests;
  const value = candidate.requests > 0 ? pc - ps : null;
  if (candidate.requests < min) return { gate, value, limit, status: 'wait', detail: `judged from ${min} candidate requests` };
  const lower = differenceLowerBound(candidate.errors, candidate.requests, stable.errors, stable.requests);
  const figure = `candidate ${pct(pc)} vs stable ${pct(ps)}: +${pct(Math.max(0, value!))} (95% lower bound ${pct(lower)}), limit +${pct(limit)}`;
  if (lower > limit) return { gate, value, limit, status: 'fail', detail: figure };
  if (value! <= limit) return { gate, value, limit, status: 'pass', detail: figure };
  return { gate, value, limit, status: 'wait', detail: `${figure}: not yet conclusive` };
}

/**
 * Latency: the p99 ratio against its limit. Over the limit fails only with
 * confidence, from either of two tests:
 * - the tail: the candidate's p99 lower bound over the stable p99 upper
 *   bound (order-statistic bounds) is above the limit;
 * - the body: a rank test says the candidate is slower even than the stable
 *   latencies stretched by the limit (Kayenta's tolerance).
 */
function latencyGate(candidate: BackendEvidence, stable: BackendEvidence, bounds: number[], limit: number, min: number): GateFigure {
  const gate: GateName = 'latencyRatio';
  if (stable.requests < MIN_STABLE_FOR_COMPARISON || bounds.length === 0) {
    return { gate, value: null, limit, status: 'n/a', detail: `only ${stable.requests} stable requests to compare with` };
  }
  const p99c = histogramQuantile(0.99, bounds, candidate.latency);
  const p99s = histogramQuantile(0.99, bounds, stable.latency);
  const value = Number.isFinite(p99c) && p99s > 0 ? p99c / p99s : null;
  if (candidate.requests < min || value === null) {
    return { gate, value, limit, status: 'wait', detail: `judged from ${min} candidate requests` };
  }
  const tail = quantileBounds(0.99, bounds, candidate.latency).low / quantileBounds(0.99, bounds, stable.latency).high;
  const p = mannWhitneyGreater(candidate.latency, scaleBinned(bounds, stable.latency, limit));
  const figure =
    `p99 ${(p99c * 1000).toFixed(1)} ms vs ${(p99s * 1000).toFixed(1)} ms = ${value.toFixed(2)}x ` +
    `(tail at least ${tail.toFixed(2)}x with 95% confidence; slower than ${limit}x stable: rank test p=${p.toFixed(3)}), limit ${limit}x`;
  if (value <= limit) return { gate, value, limit, status: 'pass', detail: figure };
  if (tail > limit || p < 0.01) return { gate, value, limit, status: 'fail', detail: figure };
  return { gate, value, limit, status: 'wait', detail: `${figure}: not yet conclusive` };
}
