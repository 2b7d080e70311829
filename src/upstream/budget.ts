/**
 * A retry budget (as Envoy's and Linkerd's): over a sliding 10 s window,
 * retries may add at most `percent` of the requests, plus a small floor so
 * a quiet upstream can still retry. When every endpoint fails, retries stop
 * well before they multiply the load on what is left.
 */
const SLOTS = 10;
const SLOT_MS = 1000;
/** Retries a second allowed whatever the traffic. */
const MIN_PER_SECOND = 3;

export class RetryBudget {
  private readonly requests = new Float64Array(SLOTS);
  private readonly retries = new Float64Array(SLOTS);
  private last = -Infinity;

  constructor(private readonly percent: number) {}

  /** A request's first try. */
  request(now: number): void {
    this.requests[this.slot(now)]! += 1;
  }

  /** Takes one retry from the budget; false when it is spent. */
  tryRetry(now: number): boolean {
    const current = this.slot(now);
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < SLOTS; i++) {
      requests += this.requests[i]!;
      retries += this.retries[i]!;
    }
    if (retries >= (requests * this.percent) / 100 + MIN_PER_SECOND * SLOTS) return false;
    this.retries[current]! += 1;
    return true;
  }

  private slot(now: number): number {
    const stamp = Math.floor(now / SLOT_MS);
    if (stamp !== this.last) {
      // Clear the slots of the seconds that passed since the last call.
      for (let s = Math.max(this.last + 1, stamp - SLOTS + 1); s <= stamp; s++) {
        this.requests[s % SLOTS] = 0;
        this.retries[s % SLOTS] = 0;
      }
      this.last = stamp;
    }
    return stamp % SLOTS;
  }
}
