/**
 * Bytes the shadow path holds in one thread, against limits.shadowInflightBytes:
 * the serving thread's request copies and captured answers (service.ts), and
 * the copying shadow thread's captures of answers still arriving (clients.ts).
 */
export class ByteBudget {
  held = 0;
  /** The limit take() uses when given none: the copying shadow thread's, as the serving thread last sent it. */
  limit = Number.POSITIVE_INFINITY;

  /** Takes `bytes` unless that would pass the limit; false (nothing taken) then. */
  take(bytes: number, limit = this.limit): boolean {
    if (this.held + bytes > limit) return false;
    this.held += bytes;
    return true;
  }

  give(bytes: number): void {
    this.held -= bytes;
  }
}
