/**
 * Latency per endpoint as pairs are compared: the engine adds each pair's
 * latency histograms here, re-judges an endpoint every few pairs, reports
 * an endpoint the moment it becomes confidently slower than its
 * diff.latency.maxRatio, and keeps a per-route figure of the worst
 * endpoint's ratio for the metrics (which carry no endpoint labels).
 */
import { addLatency } from './counts.js';
import { compareLatency, MIN_LATENCY_PAIRS, round, type LatencyComparison } from './stats.js';
import type { EndpointLatency } from './types.js';

interface Watched {
  readonly latency: EndpointLatency;
  pairs: number;
  /** The pair count at which it is judged next. */
  next: number;
  slower: boolean;
  last: LatencyComparison | undefined;
}

export interface LatencyAlarm {
  readonly route: string;
  readonly shadow: string;
  readonly endpoint: string;
  readonly comparison: LatencyComparison;
  readonly maxRatio: number;
}

/**
 * Re-judged every this many pairs per endpoint, or every 5% more pairs
 * when that is more: a judgement sorts four histograms, and judging every
 * ten pairs took a tenth of a comparing thread's time at 2,000 pairs a
 * second, while 5% more evidence rarely moves a verdict.
 */
const EVERY = 10;
const EVERY_SHARE = 0.05;

export class LatencyWatch {
  /** route + shadow → endpoint → what was seen. */
  private readonly targets = new Map<string, Map<string, Watched>>();
  private size = 0;

  constructor(private readonly maxEndpoints = 10_000) {}

  /**
   * Adds one pair. `judged` is set when the endpoint was re-judged (then
   * `worst` is the target's worst endpoint ratio); `alarm` when it just
   * became confidently slower.
   */
  add(route: string, shadow: string, endpoint: string, latency: EndpointLatency): { alarm?: LatencyAlarm; worst?: number } {
    const targetKey = route + '\u0000' + shadow;
    let target = this.targets.get(targetKey);
    if (!target) this.targets.set(targetKey, (target = new Map()));
    let w = target.get(endpoint);
    if (!w) {
      if (this.size >= this.maxEndpoints) return {};
      this.size++;
      w = { latency: { ratio: {}, baselineRatio: {}, primary: {}, shadow: {}, maxRatio: latency.maxRatio }, pairs: 0, next: EVERY, slower: false, last: undefined };
      target.set(endpoint, w);
    }
    addLatency(w.latency, latency);
    if (++w.pairs < w.next) return {};
    w.next = w.pairs + Math.max(EVERY, Math.floor(w.pairs * EVERY_SHARE));
    w.last = compareLatency(w.latency, latency.maxRatio);
    const became = w.last.slower && !w.slower;
    w.slower = w.last.slower;
    let worst = 0;
    for (const other of target.values()) if (other.last?.ratio != null && other.last.pairs >= MIN_LATENCY_PAIRS) worst = Math.max(worst, other.last.ratio);
    return {
      worst: round(worst, 3),
      ...(became ? { alarm: { route, shadow, endpoint, comparison: w.last, maxRatio: latency.maxRatio } } : {}),
    };
  }
}
