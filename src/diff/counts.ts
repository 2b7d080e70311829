/**
 * Additive counts per (route, shadow target), and per endpoint inside it: a
 * compared pair's counts are added to the store's, and replicas' or workers'
 * counts merge the same way. Tables are bounded; past their limits new
 * paths are only counted, and new endpoints go under "(other)".
 */
import { OTHER_ENDPOINT } from './endpoint-template.js';
import { addLog, LATENCY_BOUNDS_MS, latencyBucket, mergeLog } from './stats.js';
import {
  DIFFERENCE_KINDS,
  type CauseCounts,
  type DifferenceKind,
  type EndpointCounts,
  type EndpointLatency,
  type LatencySample,
  type PathCounts,
  type ShadowCounts,
} from './types.js';

const emptyKinds = (): Record<DifferenceKind, number> => ({ status: 0, header: 0, body: 0, error: 0, call: 0, latency: 0 });

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
    kinds: emptyKinds(),
    paths: [],
    pathsOmitted: 0,
    latency: {
      primary: new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0),
      shadow: new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0),
      primarySumMs: 0,
      shadowSumMs: 0,
    },
    endpoints: [],
    noiseOnly: 0,
  };
}

export function emptyEndpoint(endpoint: string, maxRatio: number, sample?: LatencySample): EndpointCounts {
  return {
    endpoint,
    compared: 0,
    differing: 0,
    baselined: 0,
    repeated: 0,
    noiseMasked: 0,
    noiseOnly: 0,
    kinds: emptyKinds(),
    paths: [],
    pathsOmitted: 0,
    causes: [],
    latency: { ratio: {}, baselineRatio: {}, primary: {}, shadow: {}, maxRatio, ...(sample ? { sample } : {}) },
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

/** Adds one endpoint's latency (a pair's sample, or histograms) into another's. */
export function addLatency(into: EndpointLatency, from: EndpointLatency): void {
  const s = from.sample;
  if (s) {
    addLog(into.ratio, s.shadowMs / s.primaryMs);
    addLog(into.primary, s.primaryMs);
    addLog(into.shadow, s.shadowMs);
    if (s.baselineMs !== undefined) addLog(into.baselineRatio, s.baselineMs / s.primaryMs);
  } else {
    mergeLog(into.ratio, from.ratio);
    mergeLog(into.baselineRatio, from.baselineRatio);
    mergeLog(into.primary, from.primary);
    mergeLog(into.shadow, from.shadow);
  }
  into.maxRatio = from.maxRatio;
}

const pathKey = (kind: DifferenceKind, path: string) => kind + '\u0000' + path;

const OPTIONAL_SUMS = ['raw', 'beyond', 'withStatus', 'repeatNoise', 'tolerated', 'reordered'] as const;

export function addPath(entry: PathCounts, p: PathCounts): void {
  entry.differing += p.differing;
  entry.noise += p.noise;
  entry.masked += p.masked;
  for (const f of OPTIONAL_SUMS) if (p[f]) entry[f] = (entry[f] ?? 0) + p[f]!;
  if (p.maxRelative !== undefined && p.maxRelative > (entry.maxRelative ?? -1)) entry.maxRelative = p.maxRelative;
  if (p.example !== undefined && entry.example === undefined && p.differing > 0) entry.example = p.example;
}

/** A bounded index of paths, added into a list that stays in the counts. */
class PathIndex {
  private readonly index = new Map<string, PathCounts>();
  constructor(
    private readonly list: PathCounts[],
    private readonly max: number,
  ) {}
  /** False when the path is past the limit. */
  add(p: PathCounts): boolean {
    const k = pathKey(p.kind, p.path);
    let entry = this.index.get(k);
    if (!entry) {
      if (this.index.size >= this.max) return false;
      entry = { kind: p.kind, path: p.path, differing: 0, noise: 0, masked: 0 };
      this.index.set(k, entry);
      this.list.push(entry);
    }
    addPath(entry, p);
    return true;
  }
}

const MAX_CAUSES = 16;
const MAX_CAUSE_PATHS = 8;

function addCauses(into: CauseCounts[], from: readonly CauseCounts[]): void {
  for (const c of from) {
    let entry = into.find((e) => e.cause === c.cause);
    if (!entry) {
      if (into.length >= MAX_CAUSES) continue;
      into.push((entry = { cause: c.cause, requests: 0, example: c.example, with: [] }));
    }
    entry.requests += c.requests;
    for (const w of c.with) if (entry.with.length < MAX_CAUSE_PATHS && !entry.with.includes(w)) entry.with.push(w);
  }
}

class EndpointTable {
  readonly counts: EndpointCounts;
  private readonly paths: PathIndex;
  constructor(endpoint: string, maxPaths: number) {
    this.counts = emptyEndpoint(endpoint, 1.5);
    this.paths = new PathIndex(this.counts.paths, maxPaths);
  }
  add(d: EndpointCounts): void {
    const c = this.counts;
    c.compared += d.compared;
    c.differing += d.differing;
    c.baselined += d.baselined;
    c.repeated += d.repeated ?? 0;
    c.noiseMasked += d.noiseMasked;
    c.noiseOnly += d.noiseOnly ?? 0;
    c.pathsOmitted += d.pathsOmitted;
    for (const kind of DIFFERENCE_KINDS) c.kinds[kind] += d.kinds?.[kind] ?? 0;
    for (const p of d.paths) if (!this.paths.add(p)) c.pathsOmitted++;
    addCauses(c.causes, d.causes ?? []);
    addLatency(c.latency, d.latency);
  }
}

/** Counts with indexes over their paths and endpoints, for adding many deltas. */
export class CountsTable {
  readonly counts: ShadowCounts;
  private readonly paths: PathIndex;
  private readonly endpoints = new Map<string, EndpointTable>();

  constructor(
    route: string,
    shadow: string,
    maxPaths: number,
    private readonly maxEndpoints = 200,
    private readonly maxPathsPerEndpoint = 128,
  ) {
    this.counts = emptyCounts(route, shadow);
    this.paths = new PathIndex(this.counts.paths, maxPaths);
  }

  private endpoint(name: string): EndpointTable {
    let table = this.endpoints.get(name);
    if (!table) {
      const key = this.endpoints.size >= this.maxEndpoints - 1 && name !== OTHER_ENDPOINT ? OTHER_ENDPOINT : name;
      table = this.endpoints.get(key);
      if (!table) {
        table = new EndpointTable(key, this.maxPathsPerEndpoint);
        this.endpoints.set(key, table);
        this.counts.endpoints!.push(table.counts);
      }
    }
    return table;
  }

  add(delta: ShadowCounts): void {
    const c = this.counts;
    if (delta.baseline !== undefined) c.baseline = delta.baseline;
    c.compared += delta.compared;
    c.differing += delta.differing;
    c.baselined += delta.baselined;
    c.dropped += delta.dropped;
    c.noiseMasked += delta.noiseMasked;
    c.noiseOnly = (c.noiseOnly ?? 0) + (delta.noiseOnly ?? 0);
    c.pathsOmitted += delta.pathsOmitted;
    for (const kind of DIFFERENCE_KINDS) c.kinds[kind] += delta.kinds[kind] ?? 0;
    for (const p of delta.paths) if (!this.paths.add(p)) c.pathsOmitted++;
    addInto(c.latency.primary, delta.latency.primary);
    addInto(c.latency.shadow, delta.latency.shadow);
    c.latency.primarySumMs += delta.latency.primarySumMs;
    c.latency.shadowSumMs += delta.latency.shadowSumMs;
    for (const e of delta.endpoints ?? []) this.endpoint(e.endpoint).add(e);
  }
}

function addInto(target: number[], source: readonly number[]): void {
  const n = Math.min(target.length, source.length);
  for (let i = 0; i < n; i++) target[i] += source[i] ?? 0;
}

/**
 * Counts of many pairs added up per (route, shadow target), taken as one
 * delta each. A comparing thread sends its turn's counts so: one pair's
 * counts are about a hundred small objects, and cloning them across the
 * thread boundary cost the serving thread more than anything else a copy
 * costs it. Its limits are wider than the store's, so the store's decide.
 */
export class CountsMerger {
  private tables = new Map<string, CountsTable>();

  add(delta: ShadowCounts): void {
    const key = delta.route + '\u0000' + delta.shadow;
    let table = this.tables.get(key);
    if (!table) this.tables.set(key, (table = new CountsTable(delta.route, delta.shadow, 4096, 4096, 1024)));
    table.add(delta);
  }

  get size(): number {
    return this.tables.size;
  }

  /** The sums so far, one per (route, shadow target); the merger starts empty again. */
  take(): ShadowCounts[] {
    const sums = [...this.tables.values()].map((t) => t.counts);
    this.tables = new Map();
    return sums;
  }
}
