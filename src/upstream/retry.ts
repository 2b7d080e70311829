/**
 * When a failed try may be tried again, on another endpoint:
 *
 * - never once any of the response has reached the client;
 * - never when the request body has started to flow upstream (it cannot be
 *   sent twice: it was streamed, not kept);
 * - `connect`: the connection was never made, so the upstream saw nothing;
 *   any method;
 * - `reset`: the connection failed before any response. Any method when not
 *   a byte of the request was written; idempotent methods without a body
 *   also after the head went out (repeating them is harmless by definition);
 * - a status in `on`: idempotent methods without a body only;
 * - and only while the upstream's retry budget lasts (budget.ts).
 */
import type { RetryConfig } from '../config/types.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export type RetryCause = 'connect' | 'reset' | 'status';

export interface TryFacts {
  readonly method: string;
  /** The request has a body (declared or chunked). */
  readonly hasBody: boolean;
  /** Bytes of the request (head or body) were written to the upstream connection. */
  readonly requestWritten: boolean;
  /** Bytes of the request body were read from the client for this try. */
  readonly bodyStarted: boolean;
}

export class RetryPolicy {
  private readonly onConnect: boolean;
  private readonly onReset: boolean;
  private readonly statuses: ReadonlySet<number>;

  constructor(readonly config: RetryConfig) {
    this.onConnect = config.on.includes('connect');
    this.onReset = config.on.includes('reset');
    this.statuses = new Set(config.on.filter((x): x is number => typeof x === 'number'));
  }

  get attempts(): number {
    return this.config.attempts;
  }

  /** Whether this failure, alone, allows another try (the budget and the count are the caller's). */
  allows(cause: RetryCause, facts: TryFacts, status = 0): boolean {
    if (facts.bodyStarted) return false;
    switch (cause) {
      case 'connect':
        return this.onConnect;
      case 'reset':
        if (!this.onReset) return false;
        return !facts.requestWritten || (IDEMPOTENT.has(facts.method) && !facts.hasBody);
      case 'status':
        return this.statuses.has(status) && IDEMPOTENT.has(facts.method) && !facts.hasBody;
    }
  }

  /** Whether a response with this status could be retried at all (cheap check on every response). */
  retriesStatus(status: number): boolean {
    return this.statuses.size > 0 && this.statuses.has(status);
  }
}
