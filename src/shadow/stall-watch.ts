/**
 * How long this thread was kept from running while a copy was in flight.
 * On a machine whose cores are busy (serving, other processes) the shadow
 * thread that copies waits for one, for its own garbage collection, or for
 * a slice of its own comparisons (shadow-thread.ts); a copy's answer it
 * reads late looks slower than the shadow was. Such a
 * latency is not the shadow's: it is not used to judge the shadow's latency
 * (diff/compare-pair.ts).
 *
 * A timer ticks every few milliseconds while anything is measured; how late
 * each tick ran is the thread's stall. Spans of recent stalls are kept, so a
 * copy asks for the worst one since it was sent, whatever other copies asked
 * in between.
 */
export class StallWatch {
  private timer: NodeJS.Timeout | undefined;
  private lastTick = 0;
  private active = 0;
  /** Ticks that ran late, oldest first: when, and by how much. */
  private readonly stalls: { at: number; ms: number }[] = [];

  constructor(
    private readonly tickMs = 5,
    /** Stalls older than this are forgotten (the longest a copy may take). */
    private readonly keepMs = 120_000,
  ) {}

  /** A measurement starts (performance.now() is its start); the watch ticks while any runs. */
  begin(): void {
    if (this.active++ > 0) return;
    this.lastTick = performance.now();
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  /** Ends a measurement started at `since`: the longest stall in it, ms. */
  end(since: number): number {
    this.tick();
    let worst = 0;
    for (let i = this.stalls.length - 1; i >= 0 && this.stalls[i]!.at >= since; i--) worst = Math.max(worst, this.stalls[i]!.ms);
    if (--this.active === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    return worst;
  }

  private tick(): void {
    const now = performance.now();
    const late = now - this.lastTick - this.tickMs;
    this.lastTick = now;
    // Stalls under a tick are the timer's own jitter.
    if (late > this.tickMs) this.stalls.push({ at: now, ms: late });
    while (this.stalls.length > 0 && (this.stalls[0]!.at < now - this.keepMs || this.stalls.length > 4096)) this.stalls.shift();
  }
}
