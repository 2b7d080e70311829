/**
 * The egress calls held for pairing, grouped by the x-request-id of the
 * request that caused them. Live calls are recorded with their answers; dark
 * calls are noted so a completed mirrored pair can be compared call by call.
 *
 * Pairing: the n-th dark call to a (dependency, method, path) pairs with
 * the n-th live one. A dark call whose twin has not been recorded (or has
 * not been answered) yet waits for it, up to its dependency's `wait`.
 *
 * Bounded: every group counts its bytes; past limits.recordBytes the oldest
 * groups go first, and groups older than timeouts.record go too (one sweep a
 * second). Each recorded call let go before its pair was compared is
 * counted as dropped; compared ones stay held (for export) until then. Waiting dark calls of a dropped group are answered as
 * having no twin.
 */
import type { IncomingHttpHeaders } from 'node:http';

export interface RecordedResponse {
  readonly status: number;
  /** Lower-cased names, hop-by-hop headers already removed. */
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface EgressCall {
  readonly dependency: string;
  readonly method: string;
  /** The path after /NAME at the egress (what the service asked for), without the query. */
  readonly path: string;
  /** The query, without "?"; '' for none. */
  readonly query: string;
  /** The path at the real dependency (its URL's base path prepended), without the query. */
  readonly targetPath: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly time: number;
}

export interface LiveCall extends EgressCall {
  /** Set once answered (the dependency's answer, or the gateway's 502/504 for it). */
  response?: RecordedResponse;
  /**
   * The answer is the gateway's own: the dependency was unreachable, timed
   * out or answered past limits.maxBodyBytes. Replayed to its dark twin as
   * the live side saw it, never exported as the dependency's.
   */
  byGateway?: boolean;
}

export interface DarkCall extends EgressCall {
  /** How it was answered, once it was. */
  outcome?: string;
}

/** The calls one request caused on both sides, handed to comparison. */
export interface RequestCalls {
  readonly live: readonly LiveCall[];
  readonly dark: readonly DarkCall[];
  /** The diff baseline's dark calls (it runs the live version): replayed, kept apart. */
  readonly baseline: readonly DarkCall[];
}

export const callKey = (c: { dependency: string; method: string; path: string }) => `${c.dependency}\u0000${c.method}\u0000${c.path}`;

interface Waiter {
  readonly key: string;
  readonly index: number;
  readonly resolve: (call: LiveCall | undefined) => void;
  readonly timer: NodeJS.Timeout;
}

class Group {
  readonly live: LiveCall[] = [];
  readonly dark: DarkCall[] = [];
  readonly baseline: DarkCall[] = [];
  waiters: Waiter[] = [];
  bytes = 0;
  /** Handed to comparison once; kept (for export) until the bounds let it go. */
  compared = false;
  constructor(readonly created: number) {}

  /** The index-th answered live call with this key, if there is one. */
  twin(key: string, index: number): LiveCall | undefined {
    let seen = 0;
    for (const call of this.live) {
      if (callKey(call) !== key) continue;
      if (seen === index) return call.response ? call : undefined;
      seen++;
    }
    return undefined;
  }
}

/** Approximate memory held by a call: bodies, header text, bookkeeping. */
function sizeOf(call: EgressCall, response?: RecordedResponse): number {
  let bytes = 256 + call.body.length + call.path.length + call.query.length + call.targetPath.length + headerBytes(call.headers);
  if (response) bytes += 64 + response.body.length + headerBytes(response.headers);
  return bytes;
}

function headerBytes(headers: IncomingHttpHeaders): number {
  let n = 0;
  for (const [k, v] of Object.entries(headers)) n += k.length + (Array.isArray(v) ? v.join('').length + 8 * v.length : (v?.length ?? 0)) + 16;
  return n;
}

export interface RecordingLimits {
  readonly maxBytes: number;
  readonly ttlMs: number;
}

export class RecordingStore {
  private readonly groups = new Map<string, Group>();
  private sweeper: NodeJS.Timeout | undefined;
  bytes = 0;
  dropped = 0;

  constructor(
    private readonly limits: () => RecordingLimits,
    private readonly onChange: (bytes: number, dropped: number) => void = () => undefined,
  ) {}

  get size(): number {
    return this.groups.size;
  }

  private group(requestId: string): Group {
    let group = this.groups.get(requestId);
    if (!group) {
      group = new Group(Date.now());
      this.groups.set(requestId, group);
      this.sweepSoon();
    }
    return group;
  }

  /** Records a live call as it starts; answer it with `answered`. */
  startLive(requestId: string, call: EgressCall): LiveCall {
    const entry: LiveCall = { ...call };
    const group = this.group(requestId);
    group.live.push(entry);
    this.grow(group, sizeOf(call));
    return entry;
  }

  answered(requestId: string, entry: LiveCall, response: RecordedResponse, byGateway = false): void {
    entry.response = response;
    if (byGateway) entry.byGateway = true;
    const group = this.groups.get(requestId);
    if (!group || !group.live.includes(entry)) return;
    this.grow(group, sizeOf(entry, response) - sizeOf(entry));
    if (group.waiters.length === 0 || !this.groups.has(requestId)) return;
    const key = callKey(entry);
    group.waiters = group.waiters.filter((w) => {
      if (w.key !== key) return true;
      const twin = group.twin(w.key, w.index);
      if (!twin) return true;
      clearTimeout(w.timer);
      w.resolve(twin);
      return false;
    });
  }

  /**
   * Notes a dark call and resolves with its live twin once that is answered,
   * or undefined after `waitMs`.
   */
  dark(requestId: string, call: EgressCall, waitMs: number, baseline = false): { entry: DarkCall; twin: Promise<LiveCall | undefined> } {
    const entry: DarkCall = { ...call };
    const group = this.group(requestId);
    const key = callKey(call);
    const list = baseline ? group.baseline : group.dark;
    const index = list.filter((d) => callKey(d) === key).length;
    list.push(entry);
    this.grow(group, sizeOf(call));
    const found = group.twin(key, index);
    if (found || waitMs <= 0 || !this.groups.has(requestId)) return { entry, twin: Promise.resolve(found) };
    const twin = new Promise<LiveCall | undefined>((resolve) => {
      const timer = setTimeout(() => {
        group.waiters = group.waiters.filter((w) => w.timer !== timer);
        resolve(undefined);
      }, waitMs);
      group.waiters.push({ key, index, resolve, timer });
    });
    return { entry, twin };
  }

  /**
   * The calls one request caused, once (its pair is being compared). They
   * stay held, for export, until the bounds let them go: not counted as
   * dropped then.
   */
  take(requestId: string): RequestCalls | undefined {
    const group = this.groups.get(requestId);
    if (!group || group.compared) return undefined;
    group.compared = true;
    return { live: [...group.live], dark: [...group.dark], baseline: [...group.baseline] };
  }

  /** Live calls held now for one dependency, oldest first. */
  liveCalls(dependency: string): LiveCall[] {
    const out: LiveCall[] = [];
    for (const group of this.groups.values()) for (const c of group.live) if (c.dependency === dependency && c.response) out.push(c);
    return out;
  }

  /** Counts held per dependency: live calls recorded. */
  heldByDependency(): Map<string, number> {
    const out = new Map<string, number>();
    for (const group of this.groups.values()) for (const c of group.live) out.set(c.dependency, (out.get(c.dependency) ?? 0) + 1);
    return out;
  }

  private grow(group: Group, delta: number): void {
    group.bytes += delta;
    this.bytes += delta;
    const { maxBytes } = this.limits();
    if (this.bytes > maxBytes) {
      for (const [id, g] of this.groups) {
        if (this.bytes <= maxBytes) break;
        this.remove(id, g, true);
      }
    }
    this.onChange(this.bytes, this.dropped);
  }

  private remove(requestId: string, group: Group, dropped: boolean): void {
    if (this.groups.get(requestId) !== group) return;
    this.groups.delete(requestId);
    this.bytes -= group.bytes;
    if (dropped && !group.compared) this.dropped += group.live.length + group.dark.length + group.baseline.length;
    for (const w of group.waiters) {
      clearTimeout(w.timer);
      w.resolve(undefined);
    }
    group.waiters = [];
    this.onChange(this.bytes, this.dropped);
  }

  /** Lets go of groups older than timeouts.record. */
  sweep(now = Date.now()): void {
    const { ttlMs } = this.limits();
    for (const [id, group] of this.groups) {
      if (group.created + ttlMs > now) break;
      // A dark call still waiting keeps its group until it gives up.
      if (group.waiters.length > 0) continue;
      this.remove(id, group, true);
    }
  }

  private sweepSoon(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      this.sweep();
      if (this.groups.size === 0) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
      }
    }, 1000);
    this.sweeper.unref();
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const [id, group] of [...this.groups]) this.remove(id, group, false);
  }
}
