/**
 * Additive counts per (route, shadow target): a compared pair's counts are
 * added to the store's, and replicas' or workers' counts merge the same way.
 * The path table is bounded; past its limit new paths are only counted.
 */
import { DIFFERENCE_KINDS, type DifferenceKind, type PathCounts, type ShadowCounts } from './types.js';
import { LATENCY_BOUNDS_MS, latencyBucket } from './stats.js';

export function emptyCounts(route: string, shadow: string, baseline?: string): ShadowCounts {
  return {
    route,
    shadow,
    ...(baseline !== undefined ? { baseline } : {}),
    compared: 0,
    differing: 0,
    baselined: 0,
    dropped: 0,
    noiseMasked: 0,
    kinds: { status: 0, header: 0, body: 0, error: 0, call: 0 },
    paths: [],
    pathsOmitted: 0,
    latency: {
      primary: new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0),
      shadow: new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0),
      primarySumMs: 0,
      shadowSumMs: 0,
    },
  };
}

export function observeLatency(counts: ShadowCounts, primaryMs: number, shadowMs: number | undefined): void {
  counts.latency.primary[latencyBucket(primaryMs)]++;
  counts.latency.primarySumMs += primaryMs;
  if (shadowMs !== undefined) {
    counts.latency.shadow[latencyBucket(shadowMs)]++;
    counts.latency.shadowSumMs += shadowMs;
  }
}

const pathKey = (kind: DifferenceKind, path: string) => kind + '\u0000' + path;

/** Counts with an index over their paths, for adding many deltas. */
export class CountsTable {
  readonly counts: ShadowCounts;
  private readonly index = new Map<string, PathCounts>();

  constructor(
    route: string,
    shadow: string,
    private readonly maxPaths: number,
  ) {
    this.counts = emptyCounts(route, shadow);
  }

  /** The entry for a path, created if there is room. */
  path(kind: DifferenceKind, path: string): PathCounts | undefined {
    const k = pathKey(kind, path);
    let entry = this.index.get(k);
    if (!entry && this.index.size < this.maxPaths) {
      entry = { kind, path, differing: 0, noise: 0, masked: 0 };
      this.index.set(k, entry);
      this.counts.paths.push(entry);
    }
    return entry;
  }

  add(delta: ShadowCounts): void {
    const c = this.counts;
    if (delta.baseline !== undefined) c.baseline = delta.baseline;
    c.compared += delta.compared;
    c.differing += delta.differing;
    c.baselined += delta.baselined;
    c.dropped += delta.dropped;
    c.noiseMasked += delta.noiseMasked;
    c.pathsOmitted += delta.pathsOmitted;
    for (const kind of DIFFERENCE_KINDS) c.kinds[kind] += delta.kinds[kind] ?? 0;
    for (const p of delta.paths) {
      const entry = this.path(p.kind, p.path);
      if (!entry) {
        c.pathsOmitted++;
        continue;
      }
      entry.differing += p.differing;
      entry.noise += p.noise;
      entry.masked += p.masked;
    }
    addInto(c.latency.primary, delta.latency.primary);
    addInto(c.latency.shadow, delta.latency.shadow);
    c.latency.primarySumMs += delta.latency.primarySumMs;
    c.latency.shadowSumMs += delta.latency.shadowSumMs;
  }
}

function addInto(target: number[], source: readonly number[]): void {
  const n = Math.min(target.length, source.length);
  for (let i = 0; i < n; i++) target[i] += source[i] ?? 0;
}
