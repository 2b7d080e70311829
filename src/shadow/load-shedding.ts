/**
 * Sheds shadow copies while the serving thread is saturated: users first.
 *
 * The shadow thread runs at the lowest CPU priority, but part of every copy
 * is the serving thread's own: teeing the request, capturing the primary's
 * answer, handing both over and taking the outcome back. At saturation that
 * share is taken from users: on two cores, a 100% compared shadow served
 * 0.42-0.51x the requests of no shadow. So every 250 ms the serving
 * thread's event-loop utilization over that window is read (lazily, by the
 * next copy chosen; no timer): at or above the route-independent bound
 * (limits.shadowShedAbove) the share of chosen copies admitted is halved,
 * down to 1/128, so a dark launch keeps a trickle of comparisons; well below
 * it (by HYSTERESIS) the share doubles per window elapsed, back to all.
 * Copies shed are counted as dropped, like those past the in-flight bound,
 * and gatewayctl_shadow_admitted_ratio shows the share.
 *
 * A saturated loop stays saturated when copies are shed (the load offered
 * is what keeps it busy), so the share stays at its floor until the load
 * falls: below saturation nothing is shed. Side by side at saturation
 * (wrk, 4 rounds): 5,688 against 4,009 req/s with a compared shadow, 0.69x
 * of no shadow (rounds 0.57-0.83x; 0.86x in a 5-round run of every
 * setup), 217 against 396 us of CPU and 126 against 159 MB peak; about 4%
 * of requests compared instead of 45%.
 *
 * The floor was 1/32 until 2026-12-06. Under wrk a shadow thread then still
 * spent over a millisecond of CPU per copy (it runs in short slices between
 * the other processes, preempted hundreds of times a second), and the
 * shadowed gateway served 0.58-1.10x of its unshadowed figure. At 1/128,
 * side by side (8 rounds, bench/README.md, "A lower floor for shedding"): 0.94 against
 * 0.78x of no shadow, about 166 against 209 us of CPU a request, and 120-200
 * pairs compared a second at saturation against 280-420.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/** How the guard reads the serving thread's load. */
export interface LoadClock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** The event loop's utilization (0-1) since the previous call. */
  utilizationSinceLast(): number;
}

export const WINDOW_MS = 250;
export const MIN_SHARE = 1 / 128;
/** The share grows again only below the bound less this. */
export const HYSTERESIS = 0.15;

/** The serving thread's own loop. */
export function eventLoopClock(): LoadClock {
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  return {
    now: () => performance.now(),
    utilizationSinceLast() {
      const current = performance.eventLoopUtilization();
      const delta = performance.eventLoopUtilization(current, last);
      last = current;
      return delta.utilization;
    },
  };
}

export class LoadShedding {
  private shareNow = 1;
  /** Admissions owed: a share of 1/4 admits every fourth copy, evenly. */
  private credit = 0;
  private windowStart: number;
  /** Copies shed since the gateway started. */
  shed = 0;

  constructor(
    private readonly clock: LoadClock = eventLoopClock(),
    /** Told when shedding starts (share below 1) and when it ends. */
    private readonly onChange?: (shedding: boolean, utilization: number) => void,
  ) {
    this.windowStart = clock.now();
  }

  /** The share of chosen copies admitted now (1: none shed). */
  get share(): number {
    return this.shareNow;
  }

  /** Whether to send this request's copies; `bound` is limits.shadowShedAbove (1 never sheds). */
  admit(bound: number): boolean {
    const now = this.clock.now();
    const elapsed = now - this.windowStart;
    if (elapsed >= WINDOW_MS) this.judge(this.clock.utilizationSinceLast(), elapsed, bound, now);
    if (this.shareNow >= 1) return true;
    this.credit += this.shareNow;
    if (this.credit >= 1) {
      this.credit -= 1;
      return true;
    }
    this.shed++;
    return false;
  }

  private judge(utilization: number, elapsed: number, bound: number, now: number): void {
    this.windowStart = now;
    const before = this.shareNow;
    if (bound < 1 && utilization >= bound) this.shareNow = Math.max(MIN_SHARE, this.shareNow / 2);
    else if (bound >= 1 || utilization < bound - HYSTERESIS) this.shareNow = Math.min(1, this.shareNow * 2 ** Math.floor(elapsed / WINDOW_MS));
    if (this.shareNow >= 1) this.credit = 0;
    if ((before >= 1) !== (this.shareNow >= 1)) this.onChange?.(this.shareNow < 1, utilization);
  }
}
