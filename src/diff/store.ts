/**
 * Where compare outcomes end up: the recent diff events in a bounded ring,
 * additive counts per (route, shadow target), and the live subscribers of
 * GET /diffs. It ingests outcomes produced anywhere (this process's engine
 * now; worker processes later), so it never compares anything itself.
 */
import { randomBytes } from 'node:crypto';
import { CountsTable } from './counts.js';
import { ExampleStore, type ExampleStoreOptions } from './examples.js';
import { describeAll, type DiffSummary } from './summary.js';
import type { DiffEvent, DiffEventBody, ReportedOutcome, ShadowCounts } from './types.js';

export interface EventFilter {
  readonly route?: string;
  readonly shadow?: string;
}

export interface Subscriber {
  readonly filter: EventFilter;
  deliver(event: DiffEvent): void;
}

export interface DiffStoreOptions {
  /** Recent events kept for replay. */
  readonly capacity?: number;
  /** Distinct paths counted per (route, shadow target). */
  readonly maxPathsPerTarget?: number;
  /** Distinct (route, shadow target) pairs counted. */
  readonly maxTargets?: number;
  readonly examples?: ExampleStoreOptions;
}

export function matches(filter: EventFilter, event: { route: string; shadow: { upstream: string } }): boolean {
  return (filter.route === undefined || filter.route === event.route) && (filter.shadow === undefined || filter.shadow === event.shadow.upstream);
}

export class DiffStore {
  /** Random per process: event ids stay unique across restarts and replicas. */
  readonly bootId = randomBytes(4).toString('hex');
  readonly since = new Date();
  private readonly ring: (DiffEvent | undefined)[];
  private next = 0;
  private sequence = 0;
  private readonly tables = new Map<string, CountsTable>();
  private readonly subscribers = new Set<Subscriber>();
  private readonly maxPaths: number;
  private readonly maxTargets: number;
  /** Counts refused because maxTargets was reached. */
  targetsOmitted = 0;
  /** Example pairs of recent events and of each finding's latest event. */
  readonly examples: ExampleStore;

  constructor(options: DiffStoreOptions = {}) {
    this.ring = new Array<DiffEvent | undefined>(Math.max(1, options.capacity ?? 1000)).fill(undefined);
    this.maxPaths = options.maxPathsPerTarget ?? 256;
    this.maxTargets = options.maxTargets ?? 1024;
    this.examples = new ExampleStore(options.examples);
  }

  get capacity(): number {
    return this.ring.length;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Adds an outcome's counts, when it has them, and its event (and example pair), when it has one. */
  ingest(outcome: ReportedOutcome): DiffEvent | undefined {
    if (outcome.counts) this.addCounts(outcome.counts);
    if (!outcome.event) return undefined;
    const event = this.addEvent(outcome.event);
    if (outcome.example) this.examples.keep(event, outcome.example);
    return event;
  }

  addCounts(delta: ShadowCounts): void {
    const key = delta.route + '\u0000' + delta.shadow;
    let table = this.tables.get(key);
    if (!table) {
      if (this.tables.size >= this.maxTargets) {
        this.targetsOmitted++;
        return;
      }
      table = new CountsTable(delta.route, delta.shadow, this.maxPaths);
      this.tables.set(key, table);
    }
    table.add(delta);
  }

  /** Stores an event under a new id and hands it to every matching subscriber. */
  addEvent(body: DiffEventBody): DiffEvent {
    const event: DiffEvent = { id: `${this.bootId}-${++this.sequence}`, ...body };
    this.ring[this.next] = event;
    this.next = (this.next + 1) % this.ring.length;
    for (const s of this.subscribers) {
      if (!matches(s.filter, event)) continue;
      try {
        s.deliver(event);
      } catch {
        this.subscribers.delete(s);
      }
    }
    return event;
  }

  /**
   * Recent matching events, oldest first: the last `limit`, or those after
   * `afterId` (all of this process's events when the id is another boot's).
   */
  recent(filter: EventFilter, options: { limit: number; afterId?: string }): DiffEvent[] {
    let after = 0;
    if (options.afterId !== undefined) {
      const dash = options.afterId.lastIndexOf('-');
      if (options.afterId.slice(0, dash) === this.bootId) after = Number(options.afterId.slice(dash + 1)) || 0;
    }
    const out: DiffEvent[] = [];
    const n = this.ring.length;
    for (let i = 1; i <= n && out.length < options.limit; i++) {
      const event = this.ring[(this.next - i + n) % n];
      if (!event) break;
      if (Number(event.id.slice(this.bootId.length + 1)) <= after) break;
      if (matches(filter, event)) out.push(event);
    }
    return out.reverse();
  }

  subscribe(subscriber: Subscriber): () => void {
    this.subscribers.add(subscriber);
    return () => {
      this.subscribers.delete(subscriber);
    };
  }

  counts(): ShadowCounts[] {
    return [...this.tables.values()].map((t) => t.counts);
  }

  summary(filter: EventFilter = {}, top?: number): DiffSummary {
    const selected = this.counts().filter((c) => matches(filter, { route: c.route, shadow: { upstream: c.shadow } }));
    return describeAll(selected, this.since, top);
  }
}
