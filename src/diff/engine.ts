/**
 * The comparison engine: the shadow path's PairSink.
 *
 * `submit` only queues (it returns at once, and never throws into the
 * user's path). The queue is bounded by `limits.compareQueue`: a pair that
 * does not fit is dropped and counted, never queued without bound. Pairs
 * are compared later in slices scheduled with setImmediate, each slice
 * stopping after a small time budget so the event loop keeps serving
 * requests in between; the work per pair is bounded in compare-pair.ts.
 * Outcomes go to a sink (the diff store here; in a worker process, the
 * channel to the process that serves /diffs) and to the metrics.
 */
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import type { MirroredPair, PairSink, UncomparedPair } from './pair.js';
import { comparePair, DEFAULT_COMPARE_SETTINGS, type CompareSettings, type PairContext } from './compare-pair.js';
import { ExampleSampler } from './examples.js';
import { emptyCounts } from './counts.js';
import { DescriptorSets } from './descriptor-sets.js';
import { EndpointBook, endpointTemplatesFor } from './endpoint-template.js';
import { isProtobufGrpc } from './grpc.js';
import { LatencyWatch, type LatencyAlarm } from './latency-watch.js';
import { LearnedNoise } from './noise.js';
import { unloadedParsersFor } from './parsers.js';
import { RepeatMemory } from './repeats.js';
import { redactTarget } from './secrets.js';
import { round } from './stats.js';
import type { CompareOutcome } from './types.js';
import { countDropped, countOutcome, type PairOutcomeSink } from './outcome-metrics.js';


export interface DiffEngineOptions {
  readonly sink: PairOutcomeSink;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
  /** Pairs waiting at most (limits.compareQueue of the config in service). */
  readonly queueLimit: () => number;
  readonly settings?: CompareSettings;
  /** Time one slice may spend comparing before yielding to the event loop. */
  readonly sliceBudgetMs?: number;
  /** Where a route's latency ratio goes; by default the metrics' gauge (a shadow thread posts it to its process). */
  readonly latencyRatio?: (route: string, shadow: string, ratio: number) => void;
  /** Called once per pair taken from the queue, compared or failed (a shadow thread acknowledges it). */
  readonly onPairDone?: () => void;
}

export class DiffEngine implements PairSink {
  private readonly sink: PairOutcomeSink;
  private readonly metrics: GatewayMetrics | undefined;
  private readonly logger: Logger | undefined;
  private readonly queueLimit: () => number;
  private readonly settings: CompareSettings;
  private readonly sliceBudgetMs: number;
  private readonly latencyRatio: (route: string, shadow: string, ratio: number) => void;
  private readonly onPairDone: (() => void) | undefined;
  readonly learned = new LearnedNoise();
  private readonly endpoints = new EndpointBook();
  private readonly repeats = new RepeatMemory();
  private readonly latency = new LatencyWatch();
  private readonly descriptorSets = new DescriptorSets();
  /** Which differing pairs get an example: their cost lands on the serving thread that keeps them. */
  private readonly examples = new ExampleSampler();
  private queue: (MirroredPair | undefined)[] = [];
  private head = 0;
  private scheduled: NodeJS.Immediate | undefined;
  /** Set while the next pair waits for a library to load (parsers.ts): no slice runs meanwhile. */
  private loading: Promise<void> | undefined;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Totals, for tests and the bench. */
  compared = 0;
  dropped = 0;
  failed = 0;

  constructor(options: DiffEngineOptions) {
    this.sink = options.sink;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.queueLimit = options.queueLimit;
    this.settings = options.settings ?? DEFAULT_COMPARE_SETTINGS;
    this.sliceBudgetMs = options.sliceBudgetMs ?? 4;
    this.latencyRatio = options.latencyRatio ?? ((route, shadow, ratio) => this.metrics?.shadowLatencyRatio.labels(route, shadow).set(ratio));
    this.onPairDone = options.onPairDone;
  }

  get pending(): number {
    return this.queue.length - this.head;
  }

  submit(pair: MirroredPair): void {
    if (this.closed || !pair.diff.enabled || pair.shadows.length === 0) return;
    if (this.pending >= this.queueLimit()) {
      this.notCompared(pair);
      return;
    }
    this.queue.push(pair);
    this.schedule();
  }

  /** Compares everything queued now, synchronously (benches): the libraries pairs need must be loaded (parsers.ts), or those pairs fail. */
  flush(): void {
    while (this.pending > 0) this.compareNext();
    this.settle();
  }

  /** Resolves once the queue is empty. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.queue = [];
    this.head = 0;
    this.settle();
  }

  private schedule(): void {
    if (this.scheduled || this.loading || this.closed) return;
    this.scheduled = setImmediate(this.slice);
  }

  private readonly slice = (): void => {
    this.scheduled = undefined;
    // flush() may have emptied the queue since this slice was scheduled.
    if (this.pending === 0) return this.settle();
    const deadline = performance.now() + this.sliceBudgetMs;
    do {
      if (this.awaitParsers()) return;
      this.compareNext();
    } while (this.pending > 0 && performance.now() < deadline);
    if (this.pending > 0) this.schedule();
    else this.settle();
  };

  /** When the next pair needs a library not loaded yet: loads it, resumes after, and says so. */
  private awaitParsers(): boolean {
    let unloaded;
    try {
      unloaded = unloadedParsersFor(this.queue[this.head]!);
    } catch {
      return false; // a malformed pair: comparing it fails and counts it
    }
    if (unloaded.length === 0) return false;
    this.loading = Promise.all(unloaded.map((m) => m.load())).then(() => {
      this.loading = undefined;
      this.schedule();
    });
    return true;
  }

  /** Made once, not per pair (bench/README.md, "Closures made per call"). */
  private readonly wantsExample: PairContext['wantsExample'] = (route, shadow, marks) => this.examples.wants(route, shadow, marks, Date.now());

  private compareNext(): void {
    const pair = this.queue[this.head]!;
    this.queue[this.head] = undefined;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    try {
      const grpc = isProtobufGrpc(pair.primary.headers);
      // A gRPC call's endpoint is its method path as it stands: /pkg.Service/Method names no data.
      const template = grpc ? pair.path.split('?')[0]! : endpointTemplatesFor(pair.diff.endpoints).endpointOf(pair.path);
      const endpoint = this.endpoints.admit(pair.route, template);
      const previous = pair.baseline || !this.learned.wantsRepeat(pair.route, endpoint) ? undefined : this.repeats.exchange(pair);
      const descriptors = grpc && pair.diff.protoDescriptors !== undefined ? this.descriptorSets.get(pair.diff.protoDescriptors) : undefined;
      const context: PairContext = {
        endpoint,
        wantsExample: this.wantsExample,
        ...(previous ? { previous } : {}),
        ...(descriptors && 'schema' in descriptors ? { protoSchema: descriptors.schema } : {}),
        ...(descriptors && 'problem' in descriptors ? { protoSchemaProblem: descriptors.problem } : {}),
      };
      const result = comparePair(pair, this.settings, this.learned, context);
      this.learned.observe(pair.route, endpoint, result.evidence, result.noise, result.shadowPaths);
      for (const outcome of result.outcomes) {
        this.count(outcome);
        this.sink.ingest(outcome);
        const latency = outcome.counts.endpoints?.[0]?.latency;
        if (!latency) continue;
        const judged = this.latency.add(pair.route, outcome.counts.shadow, endpoint, latency);
        if (judged.worst !== undefined) this.latencyRatio(pair.route, outcome.counts.shadow, judged.worst);
        if (judged.alarm) this.reportLatency(judged.alarm, pair);
      }
      this.compared++;
    } catch (err) {
      this.failed++;
      this.logger?.error('diff.failed', `comparing a mirrored pair failed: ${(err as Error).message}`, {
        route: pair.route,
        requestId: pair.requestId,
      });
    }
    this.onPairDone?.();
  }

  /** An endpoint just became confidently slower: one event with a `latency` difference. */
  private reportLatency(alarm: LatencyAlarm, pair: MirroredPair): void {
    const c = alarm.comparison;
    const counts = emptyCounts(alarm.route, alarm.shadow, pair.baseline?.upstream);
    const target = pair.shadows.find((s) => s.upstream === alarm.shadow);
    counts.kinds.latency = 1;
    const figures =
      `median shadow/primary ${c.ratio}× (95% CI ${c.ratioCi?.[0]}–${c.ratioCi?.[1]}), ` +
      `p95 ${c.p95Ratio}× (95% CI ${c.p95RatioCi?.[0]}–${c.p95RatioCi?.[1]}) over ${c.pairs} requests; limit ${alarm.maxRatio}×` +
      (c.baselineRatio !== null ? `; baseline/primary ${c.baselineRatio}×` : '');
    const late: CompareOutcome = {
      counts,
      event: {
        time: new Date().toISOString(),
        route: alarm.route,
        endpoint: alarm.endpoint,
        evidence: c.baselineRatio !== null ? 'baseline' : 'none',
        method: pair.method,
        path: redactTarget(pair.path),
        requestId: pair.requestId,
        primary: { upstream: pair.primaryUpstream, status: pair.primary.status, latencyMs: round(pair.primary.latencyMs, 1) },
        shadow: { upstream: alarm.shadow, status: target?.result.status ?? null, latencyMs: round(target?.result.latencyMs ?? 0, 1) },
        differences: [
          {
            kind: 'latency',
            path: 'latency',
            endpoint: alarm.endpoint,
            template: 'latency',
            change: 'value',
            primary: alarm.maxRatio,
            shadow: c.ratio,
            note: figures,
          },
        ],
        differenceCount: 1,
        noise: 0,
        truncated: false,
      },
    };
    this.count(late);
    this.sink.ingest(late);
  }

  private count(outcome: CompareOutcome): void {
    if (this.metrics) countOutcome(this.metrics, outcome.counts);
  }

  notCompared(pair: UncomparedPair): void {
    this.dropped++;
    countDropped(pair, this.sink, this.metrics);
  }

  private settle(): void {
    if (this.pending > 0) return;
    this.queue = [];
    this.head = 0;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
