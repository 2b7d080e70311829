/**
 * A comparison's outcome, and a pair dropped before comparison, into the
 * metrics and the outcome sink. Apart from the engine so that the serving
 * thread, which only counts what its shadow threads report, does not
 * load the comparison code (HTML, XML and protobuf parsers) at all.
 */
import type { GatewayMetrics } from '../metrics/registry.js';
import { emptyCounts } from './counts.js';
import type { UncomparedPair } from './pair.js';
import { DIFFERENCE_KINDS, type CompareOutcome, type ReportedOutcome, type ShadowCounts } from './types.js';

/** Where outcomes go: the store, or a forwarder to it. */
export interface OutcomeSink {
  ingest(outcome: ReportedOutcome): void;
}

/** Where a DiffEngine's outcomes go: one pair's each (a store or forwarder is one). */
export interface PairOutcomeSink {
  ingest(outcome: CompareOutcome): void;
}

/** Adds the counts of one compared pair, or of many added up, to the comparison metrics. */
export function countOutcome(metrics: GatewayMetrics, counts: ShadowCounts): void {
  const { route, shadow, compared, differing, kinds } = counts;
  // A latency finding is no compared pair: it must not move the diff rate the release gates read.
  if (differing > 0) metrics.shadowComparisons.labels(route, shadow, 'diff').inc(differing);
  if (compared > differing) metrics.shadowComparisons.labels(route, shadow, 'match').inc(compared - differing);
  for (const kind of DIFFERENCE_KINDS) if (kinds[kind]) metrics.shadowDifferences.labels(route, shadow, kind).inc(kinds[kind]);
}

/** A pair that found no room: counted in the metrics and, per target, in the store's counts. */
export function countDropped(pair: UncomparedPair, sink: PairOutcomeSink, metrics: GatewayMetrics | undefined): void {
  metrics?.compareDropped.labels(pair.route).inc();
  for (const target of pair.shadows) {
    const counts = emptyCounts(pair.route, target.upstream, pair.baseline?.upstream);
    counts.dropped = 1;
    try {
      sink.ingest({ counts });
    } catch {
      // Counting a drop must not fail the shadow path.
    }
  }
}
