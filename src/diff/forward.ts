/**
 * Outcomes across processes. With `serve --workers N` each worker compares
 * its own pairs; a Forwarder batches the outcomes (plain JSON) to the
 * primary process, which serves /diffs and adds them to its store.
 */
import type { OutcomeSink } from './outcome-metrics.js';
import type { ReportedOutcome } from './types.js';

/** The IPC event channel diff outcomes travel on. */
export const DIFF_CHANNEL = 'diffs';

export class Forwarder implements OutcomeSink {
  private batch: ReportedOutcome[] = [];
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param send delivers one batch (e.g. process.send)
   * @param flushMs how long an outcome may wait for company
   * @param maxBatch outcomes per message at most
   */
  constructor(
    private readonly send: (batch: ReportedOutcome[], sent?: () => void) => void,
    private readonly flushMs = 50,
    private readonly maxBatch = 256,
  ) {}

  ingest(outcome: ReportedOutcome): void {
    this.batch.push(outcome);
    if (this.batch.length >= this.maxBatch) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  /** Sends what waits now; `sent` runs once it is handed over (at once when nothing waits). */
  flush(sent?: () => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.batch.length === 0) {
      sent?.();
      return;
    }
    const batch = this.batch;
    this.batch = [];
    try {
      this.send(batch, sent);
    } catch {
      // The primary is gone; nothing to report to.
      sent?.();
    }
  }
}

/** Primary side: a batch from a worker, checked for shape, into the sink. */
export function ingestBatch(sink: OutcomeSink, payload: unknown): void {
  if (!Array.isArray(payload)) return;
  for (const item of payload) {
    const outcome = item as ReportedOutcome;
    if (!outcome || typeof outcome !== 'object') continue;
    if (outcome.counts ? typeof outcome.counts.route === 'string' : typeof outcome.event?.route === 'string') sink.ingest(outcome);
  }
}
