/**
 * The latency gate over a whole step, check after check, as the controller
 * runs it: a healthy candidate (the stable latency distribution) must not be
 * rolled back by the repeated looks, a candidate right at the limit only
 * rarely (the gate's false-failure budget), and a truly slower one still
 * is, within a few checks. Latencies are drawn from a fixed-seed generator
 * and binned into the gateway's own histogram buckets; the gate is judged
 * on the step's accumulated evidence after each check, as in the gateway.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LATENCY_BUCKETS } from '../../src/metrics/registry.js';
import type { BackendEvidence, Evidence } from '../../src/release/evidence.js';
import { judgeStep, LATENCY_ALPHA } from '../../src/release/judge.js';
import { prng } from '../helpers/raw.js';
import { releaseSettings } from '../helpers/release.js';

// Every gate at its default; the gate under test is latency, error rates stay at 0.
const release = releaseSettings({ steps: [10, 100] });

/** A 10 % step: 60 checks (e.g. every 5 s of a 5-minute step), each after 20 candidate and 180 stable requests. */
const CHECKS = 60;
const CANDIDATE_PER_CHECK = 20;
const STABLE_PER_CHECK = 180;

/**
 * Request latencies in seconds: log-normal around 20 ms with a long tail,
 * plus the shared host's hiccups (2 % of requests wait 50-250 ms more).
 */
function latencies(seed: number) {
  const random = prng(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - random.float())) * Math.cos(2 * Math.PI * random.float());
  return (slowdown: number) => {
    const base = 0.02 * Math.exp(0.5 * normal());
    const hiccup = random.float() < 0.02 ? 0.05 + 0.2 * random.float() : 0;
    return (base + hiccup) * slowdown;
  };
}

function bucketOf(seconds: number): number {
  let i = 0;
  while (i < LATENCY_BUCKETS.length && LATENCY_BUCKETS[i]! < seconds) i++;
  return i;
}

const empty = (): BackendEvidence => ({ requests: 0, errors: 0, latency: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0) });

interface StepOutcome {
  /** The check (1-based) at which the latency gate failed the step, if it did. */
  readonly failedAt: number | null;
  readonly lastStatus: string;
}

/** One step, judged after every check on all of the step's requests so far. */
function runStep(draw: (slowdown: number) => number, slowdown: number): StepOutcome {
  const v1 = empty();
  const v2 = empty();
  const evidence: Evidence = { bounds: [...LATENCY_BUCKETS], routes: { shop: { backends: { v1, v2 }, comparisons: {} } } };
  let lastStatus = '';
  for (let check = 1; check <= CHECKS; check++) {
    for (let i = 0; i < STABLE_PER_CHECK; i++) v1.latency[bucketOf(draw(1))]!++;
    for (let i = 0; i < CANDIDATE_PER_CHECK; i++) v2.latency[bucketOf(draw(slowdown))]!++;
    v1.requests += STABLE_PER_CHECK;
    v2.requests += CANDIDATE_PER_CHECK;
    const elapsed = (check * release.intervalMs) / CHECKS;
    const judgement = judgeStep(10, release, ['v1'], evidence, 'shop', elapsed);
    const gate = judgement.gates.find((g) => g.gate === 'latencyRatio')!;
    lastStatus = gate.status;
    if (judgement.verdict === 'fail') {
      assert.equal(gate.status, 'fail', judgement.reason);
      return { failedAt: check, lastStatus };
    }
  }
  return { failedAt: null, lastStatus };
}

function runSteps(seed: number, steps: number, slowdown: number): StepOutcome[] {
  const draw = latencies(seed);
  return Array.from({ length: steps }, () => runStep(draw, slowdown));
}

describe('latency gate over repeated checks', () => {
  test('a healthy candidate is not rolled back over 1000 steps of 60 checks each', () => {
    // With fixed critical values (95 % bounds, p < 0.01 at every check) this
    // model rolled back 2 in 1000 healthy steps, and 35 in 1000 at the limit.
    const outcomes = runSteps(1, 1000, 1);
    const failed = outcomes.filter((o) => o.failedAt !== null).length;
    assert.equal(failed, 0, `${failed} of 1000 healthy steps rolled back`);
    const passed = outcomes.filter((o) => o.lastStatus === 'pass').length;
    assert.ok(passed >= 990, `the gate passes at the end of the step (${passed} of 1000)`);
  });

  test('a candidate right at the limit fails at most the false-failure budget of its steps', () => {
    // Slower by exactly maxLatencyRatio: the hardest case the budget covers.
    const steps = 400;
    const failed = runSteps(2, steps, release.gates.maxLatencyRatio).filter((o) => o.failedAt !== null).length;
    // The budget (1 %) plus sampling slack: 2 standard errors of 400 steps at 1 % is 1 %.
    assert.ok(failed / steps <= LATENCY_ALPHA * 2, `${failed} of ${steps} steps at the limit rolled back`);
  });

  test('a truly slower candidate (1.6x, 1.25x allowed) is rolled back, mostly as soon as it is judged', () => {
    const outcomes = runSteps(3, 200, 1.6);
    const checks = outcomes.flatMap((o) => (o.failedAt === null ? [] : [o.failedAt])).sort((a, b) => a - b);
    // A few steps whose sampled tail happens to sit within the limit pass.
    assert.ok(checks.length >= 190, `${checks.length} of 200 slower steps rolled back`);
    // minRequests (200 candidate requests) is reached at check 10.
    assert.equal(checks[Math.floor(checks.length / 2)], 10, 'median: at the first judged check');
  });

  test('twice as slow is rolled back as soon as it is judged', () => {
    const outcomes = runSteps(4, 50, 2);
    assert.ok(outcomes.every((o) => o.failedAt === 10), JSON.stringify(outcomes.map((o) => o.failedAt)));
  });
});
