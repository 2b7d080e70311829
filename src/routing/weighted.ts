/**
 * Smooth weighted round-robin (the algorithm nginx uses): deterministic, and
 * exact over every window of sum(weights) picks, so a 90/10 split is 90/10
 * after 100 requests, not just on average. Not thread safe; each worker
 * process keeps its own state.
 */
export class SmoothWeightedPicker<T> {
  private readonly items: readonly T[];
  private readonly weights: Float64Array;
  private readonly current: Float64Array;
  private readonly total: number;

  constructor(entries: readonly { item: T; weight: number }[]) {
    const live = entries.filter((e) => e.weight > 0);
    this.items = live.map((e) => e.item);
    this.weights = Float64Array.from(live.map((e) => e.weight));
    this.current = new Float64Array(live.length);
    this.total = live.reduce((sum, e) => sum + e.weight, 0);
  }

  get size(): number {
    return this.items.length;
  }

  pick(): T {
    const n = this.items.length;
    if (n === 1) return this.items[0]!;
    let best = 0;
    for (let i = 0; i < n; i++) {
      this.current[i]! += this.weights[i]!;
      if (this.current[i]! > this.current[best]!) best = i;
    }
    this.current[best]! -= this.total;
    return this.items[best]!;
  }
}
