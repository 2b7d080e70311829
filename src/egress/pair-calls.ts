/**
 * The egress's hook into mirroring: the pair sink that hands each mirrored
 * pair the dependency calls both of its sides made, for comparison.
 */
import type { Snapshot } from '../config/compile.js';
import type { MirroredPair, PairSink } from '../diff/pair.js';
import { takePairCalls } from './remote.js';
import type { EgressService } from './service.js';

/** Attaches the calls a mirrored request caused to its pair, then passes it on. */
export function withEgressCalls(next: PairSink, egress: () => EgressService | undefined, snapshot: () => Snapshot | undefined): PairSink {
  return {
    submit(pair: MirroredPair): void {
      const calls = takePairCalls(egress(), snapshot(), pair.requestId);
      next.submit(calls ? { ...pair, calls } : pair);
    },
    notCompared: (pair) => next.notCompared(pair),
    bodyHash: (route) => next.bodyHash?.(route),
  };
}
