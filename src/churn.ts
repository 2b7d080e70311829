/**
 * Collections for members that come and go at the request rate: exchanges
 * in flight, copies awaiting their answer. Use them, not a Set or a Map,
 * for anything long-lived that short-lived objects pass through.
 *
 * Why: a Set or Map keeps its entries in a hash table that V8 replaces
 * (allocating a new one) every few additions once deletions have left it
 * full of holes, and the table it leaves behind still holds the members it
 * had then. Once the collection has lived long enough to be in the old
 * generation, those dead tables are too, and a scavenge treats everything
 * they point to as alive: the members then in flight, and all they reach
 * (requests, sockets' buffers, answers), survive until the next full
 * collection and are promoted. Measured on the gateway's plain path at
 * 1,000 req/s on Node 24: the serving thread promoted 24-33 MB in 8 s
 * through one such Set, a mark-compact every four seconds and a user p99
 * of 25-50 ms (bench/README.md, "Young-generation survival").
 *
 * Here members sit in an array and know their slot, so removal moves the
 * last member into the hole and shortens the array: nothing is reallocated
 * in the steady state, and a removed member is referenced from nowhere.
 * A member belongs to one ChurnSet at a time (it has one slot field).
 */

/** Slots a TicketTable can have: tickets are a counter times this, plus the slot. */
const TICKET_SLOTS = 2 ** 21;
/** The counter wraps well before tickets pass 2^53; a reply is never that late. */
const TICKET_ROUNDS = 2 ** 31;

/** What a member carries: its index in the set that holds it, -1 when in none. */
export interface ChurnMember {
  churnSlot: number;
}

export class ChurnSet<T extends ChurnMember> {
  private readonly members: T[] = [];

  get size(): number {
    return this.members.length;
  }

  has(member: T): boolean {
    const slot = member.churnSlot;
    return slot >= 0 && this.members[slot] === member;
  }

  add(member: T): void {
    if (this.has(member)) return;
    member.churnSlot = this.members.length;
    this.members.push(member);
  }

  delete(member: T): boolean {
    if (!this.has(member)) return false;
    const slot = member.churnSlot;
    const last = this.members.pop() as T;
    if (last !== member) {
      this.members[slot] = last;
      last.churnSlot = slot;
    }
    member.churnSlot = -1;
    return true;
  }

  /**
   * The members as they are now: a copy, so that `visit` may add or delete
   * members (itself or others) as it goes. A member deleted before its
   * turn is skipped.
   */
  forEach(visit: (member: T) => void): void {
    const now = this.members.slice();
    for (const member of now) if (this.has(member)) visit(member);
  }

  clear(): void {
    for (const member of this.members) member.churnSlot = -1;
    this.members.length = 0;
  }
}

/** What a member of a ChurnQueue carries: its neighbours, and whether it is queued. */
export interface QueueMember<T> {
  queuePrev: T | undefined;
  queueNext: T | undefined;
  queued: boolean;
}

/**
 * Members in the order they were last pushed, oldest first: a Set's order
 * without its tables. The members link to each other, so a push or a
 * removal changes a few fields and allocates nothing, and a member taken
 * out links to nothing. A member belongs to one ChurnQueue at a time.
 */
export class ChurnQueue<T extends QueueMember<T>> {
  private head: T | undefined;
  private tail: T | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Puts the member last, moving it there if it is queued already. */
  push(member: T): void {
    if (member.queued) {
      if (this.tail === member) return;
      this.delete(member);
    }
    member.queued = true;
    member.queuePrev = this.tail;
    member.queueNext = undefined;
    if (this.tail) this.tail.queueNext = member;
    else this.head = member;
    this.tail = member;
    this.count++;
  }

  delete(member: T): boolean {
    if (!member.queued) return false;
    const { queuePrev: prev, queueNext: next } = member;
    if (prev) prev.queueNext = next;
    else this.head = next;
    if (next) next.queuePrev = prev;
    else this.tail = prev;
    member.queuePrev = member.queueNext = undefined;
    member.queued = false;
    this.count--;
    return true;
  }

  /** Takes the oldest member out; undefined when empty. */
  shift(): T | undefined {
    const first = this.head;
    if (first) this.delete(first);
    return first;
  }

  clear(): void {
    while (this.shift());
  }
}

/**
 * Values awaiting a reply from another thread, by the ticket each was given:
 * a Map by id, without a Map's dead tables (see above). A ticket names its
 * slot and a counter, so a reply to a value already taken (or to a slot
 * given out again since) finds nothing.
 */
export class TicketTable<V> {
  private readonly values: (V | undefined)[] = [];
  private readonly tickets: number[] = [];
  private readonly free: number[] = [];
  private issued = 0;

  get size(): number {
    return this.values.length - this.free.length;
  }

  /** Keeps value; returns its ticket. */
  add(value: V): number {
    const slot = this.free.pop() ?? this.values.length;
    if (slot >= TICKET_SLOTS) throw new RangeError(`a TicketTable holds at most ${TICKET_SLOTS} values`);
    this.issued = (this.issued + 1) % TICKET_ROUNDS;
    const ticket = this.issued * TICKET_SLOTS + slot;
    this.values[slot] = value;
    this.tickets[slot] = ticket;
    return ticket;
  }

  /** The value given this ticket, no longer kept; undefined when there is none. */
  take(ticket: number): V | undefined {
    const slot = ticket % TICKET_SLOTS;
    if (this.tickets[slot] !== ticket) return undefined;
    const value = this.values[slot];
    this.values[slot] = undefined;
    this.tickets[slot] = -1;
    this.free.push(slot);
    return value;
  }

  /** Every value kept, no longer kept. */
  takeAll(): V[] {
    const all: V[] = [];
    this.values.forEach((value, slot) => {
      if (this.tickets[slot] >= 0) all.push(value as V);
    });
    this.values.length = 0;
    this.tickets.length = 0;
    this.free.length = 0;
    return all;
  }
}
