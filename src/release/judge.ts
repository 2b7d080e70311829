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
import { histogramQuantile, quantileBounds, scaleBinned } from '../stats/histogram.js';
import { mannWhitney } from '../stats/rank.js';
import { differenceLowerBound, wilson } from '../stats/rates.js';
import { sequentialZ } from '../stats/sequential.js';

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
  /** Length of the judged window (restarted after a scrape gap). */
  readonly elapsedMs: number;
  /** Time since the judge first saw this step: what the deadline counts. */
  readonly stepMs?: number;
  /** Set when the evidence itself cannot be judged (a scrape gap): why. */
  readonly blocked?: string;
}

/** A check whose evidence is not fit to judge: wait, and say why. */
export function unjudgeable(reason: string, elapsedMs: number, stepMs: number): Judgement {
  return { verdict: 'wait', reason: `evidence incomplete: ${reason}`, gates: [], candidateRequests: 0, stableRequests: 0, elapsedMs, stepMs, blocked: reason };
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
  stepMs: number = elapsedMs,
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
    return { verdict: 'fail', reason: `${failed.gate}: ${failed.detail}`, gates, candidateRequests, stableRequests, elapsedMs, stepMs };
  }
  if (candidateRequests < min) {
    const reason = `waiting for ${min - candidateRequests} more ${step === 'shadow' ? 'compared pairs' : 'candidate requests'} (${candidateRequests}/${min})`;
    return { verdict: 'wait', reason, gates, candidateRequests, stableRequests, elapsedMs, stepMs };
  }
  const waiting = gates.find((g) => g.status === 'wait');
  if (waiting) return { verdict: 'wait', reason: `${waiting.gate}: ${waiting.detail}`, gates, candidateRequests, stableRequests, elapsedMs, stepMs };
  if (elapsedMs < release.intervalMs) {
    const reason = `gates pass; ${Math.ceil((release.intervalMs - elapsedMs) / 1000)}s left in this step`;
    return { verdict: 'wait', reason, gates, candidateRequests, stableRequests, elapsedMs, stepMs };
  }
  return { verdict: 'pass', reason: 'every gate passed', gates, candidateRequests, stableRequests, elapsedMs, stepMs };
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
 * Samples a quantile needs beyond it to be estimated with some stability:
 * p99 is compared from 1000 candidate requests on; with fewer, the gate
 * compares the quantile that leaves this many samples above it (p95 at
 * 200 requests, p90 at 100), never below the median.
 */
export const TAIL_SAMPLES = 10;

/** The latency quantile judged with `n` candidate requests. */
export function latencyQuantile(n: number): number {
  if (n <= 0) return 0.99;
  return Math.min(0.99, Math.max(0.5, 1 - TAIL_SAMPLES / n));
}

/** Index of the histogram bucket holding `x` (bounds are upper bounds; past the last, +Inf). */
function bucketOf(bounds: readonly number[], x: number): number {
  let j = 0;
  while (j < bounds.length && bounds[j]! < x) j++;
  return j;
}

const quantileName = (q: number) => `p${Math.round(q * 1000) / 10}`;

/**
 * The latency gate is checked again on every check of a step (every few
 * seconds), each time on more of the step's requests. At a fixed critical
 * value (p < 0.01, or 95 % bounds) those repeated looks add up: a candidate
 * exactly at the limit, or a healthy one on a noisy host, crosses the line
 * by chance sooner or later, and a longer step or a faster controller makes
 * it likelier. Both latency tests therefore use a sequential boundary
 * (stats/sequential.ts, the normal-mixture boundary), valid over every look
 * at once, whatever their number or timing.
 *
 * The budget: a candidate whose latencies are exactly the stable ones
 * stretched by the limit fails a step by chance at most LATENCY_ALPHA of the
 * time over all of that step's checks, split between the rank test (half)
 * and the tail test's two quantile bounds (a quarter each: a false tail
 * failure needs the candidate's lower bound or the stable upper bound to be
 * wrong). A candidate within the limit fails less often still; a healthy
 * one (ratio 1) practically never. Four traffic steps: at most 4 % of
 * releases of a candidate right at the limit, by the union bound.
 *
 * Why not "fail only after N consecutive failing checks": consecutive
 * checks share almost all their requests, so N confirmations are nearly one,
 * and the rate they leave depends on the check frequency and step length;
 * it cannot be stated, only measured per setup. The boundary's rate can.
 * Its cost is power: a candidate must be further over the limit, or
 * observed longer, to fail (|z| ≥ about 3.6-4.4 instead of 2.33);
 * a clearly slower build still fails within a few checks.
 *
 * Caveats: the guarantee is asymptotic (the rank statistic and the binomial
 * counts behind the quantile bounds are treated as normal, which is close
 * from the tens of requests on where judging starts); the quantile judged
 * moves with the sample size (latencyQuantile), which the per-quantile
 * boundary does not cover exactly (the measured rate at the limit is in
 * test/unit/release-sequential.test.ts); a window restarted after a scrape
 * gap starts a new sequence.
 */
export const LATENCY_ALPHA = 0.01;
const RANK_ALPHA = LATENCY_ALPHA / 2;
const BOUND_ALPHA = LATENCY_ALPHA / 4;
/** Information (≈ candidate requests) at which the boundary is tightest: the default minRequests. */
const PLANNED_INFORMATION = 200;

function latencyGate(candidate: BackendEvidence, stable: BackendEvidence, bounds: number[], limit: number, min: number): GateFigure {
  const gate: GateName = 'latencyRatio';
  if (stable.requests < MIN_STABLE_FOR_COMPARISON || bounds.length === 0) {
    return { gate, value: null, limit, status: 'n/a', detail: `only ${stable.requests} stable requests to compare with` };
  }
  const q = latencyQuantile(Math.min(candidate.requests, stable.requests));
  const qc = histogramQuantile(q, bounds, candidate.latency);
  const qs = histogramQuantile(q, bounds, stable.latency);
  const value = Number.isFinite(qc) && qs > 0 ? qc / qs : null;
  if (candidate.requests < min || value === null) {
    return { gate, value, limit, status: 'wait', detail: `judged from ${min} candidate requests` };
  }
  const candidateZ = sequentialZ(candidate.requests, BOUND_ALPHA, PLANNED_INFORMATION);
  const stableZ = sequentialZ(stable.requests, BOUND_ALPHA, PLANNED_INFORMATION);
  const tail = quantileBounds(q, bounds, candidate.latency, candidateZ).low / quantileBounds(q, bounds, stable.latency, stableZ).high;
  const rank = mannWhitney(candidate.latency, scaleBinned(bounds, stable.latency, limit));
  const rankZ = sequentialZ(rank.information, RANK_ALPHA, PLANNED_INFORMATION);
  const name = quantileName(q);
  const figure =
    `${name} ${(qc * 1000).toFixed(1)} ms vs ${(qs * 1000).toFixed(1)} ms = ${value.toFixed(2)}x ` +
    `(tail at least ${tail.toFixed(2)}x; slower than ${limit}x stable: rank test z=${rank.z.toFixed(2)}, fails from ${rankZ.toFixed(2)}; ` +
    `${LATENCY_ALPHA * 100}% false-failure budget over all checks), limit ${limit}x` +
    (q < 0.99 ? `; ${name}, not p99, on ${Math.min(candidate.requests, stable.requests)} requests` : '');
  if (value <= limit) return { gate, value, limit, status: 'pass', detail: figure };
  // The histogram cannot tell the candidate's quantile from the stable one
  // stretched by the limit when both fall in one bucket (1.5 ms and 2.0 ms
  // are neighbours, a third apart): the excess is the buckets' width, not
  // evidence, and both tests over those ties would fail an identical build.
  if (bucketOf(bounds, qc) <= bucketOf(bounds, qs * limit)) {
    return { gate, value, limit, status: 'pass', detail: `${figure}: within one histogram bucket of the limit, not resolvable` };
  }
  if (tail > limit || rank.z >= rankZ) return { gate, value, limit, status: 'fail', detail: figure };
  return { gate, value, limit, status: 'wait', detail: `${figure}: not yet conclusive` };
}
