/**
 * `call` differences with `serve --workers N`. The egress (and so every
 * recorded call) lives in the primary process, while each worker compares
 * its own mirrored pairs. A worker asks the primary for a pair's calls
 * before comparing it; the primary answers with them (once per request).
 * Bodies travel as base64. A pair whose calls do not come back in time is
 * compared without them, never held without bound.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { TicketTable } from '../churn.js';
import type { Snapshot } from '../config/compile.js';
import type { BodyHash, MirroredPair, PairSink, UncomparedPair } from '../diff/pair.js';
import type { PairCalls } from './call-diff.js';
import type { DarkCall, EgressCall, LiveCall } from './recordings.js';
import type { EgressService } from './service.js';

export const CALLS_CHANNEL = 'egress-calls';

interface WireCall extends Omit<EgressCall, 'body'> {
  readonly body: string;
  readonly response?: { status: number; headers: IncomingHttpHeaders; body: string };
  readonly outcome?: string;
}
interface WireCalls {
  readonly live: WireCall[];
  readonly dark: WireCall[];
  readonly baseline: WireCall[];
  readonly ignoreBody: Record<string, readonly string[]>;
}
interface CallsQuestion {
  readonly id: number;
  readonly requestId: string;
}
interface CallsAnswer {
  readonly id: number;
  readonly calls: WireCalls | null;
}

const toWire = (c: LiveCall | DarkCall): WireCall => {
  const { response, body, ...rest } = c as LiveCall & DarkCall;
  return {
    ...rest,
    body: body.toString('base64'),
    ...(response ? { response: { ...response, body: response.body.toString('base64') } } : {}),
  };
};
const fromWire = (c: WireCall): LiveCall & DarkCall => {
  const { response, ...rest } = c;
  return {
    ...rest,
    body: Buffer.from(c.body, 'base64'),
    ...(response ? { response: { ...response, body: Buffer.from(response.body, 'base64') } } : {}),
  };
};

/** The calls of a request with what comparing them needs, handed out once. */
export function takePairCalls(egress: EgressService | undefined, snapshot: Snapshot | undefined, requestId: string): PairCalls | undefined {
  const calls = egress?.takeCalls(requestId);
  if (!calls) return undefined;
  const ignoreBody: Record<string, readonly string[]> = {};
  for (const c of [...calls.live, ...calls.dark]) ignoreBody[c.dependency] ??= snapshot?.dependencies.get(c.dependency)?.config.ignoreBody ?? [];
  return { ...calls, ignoreBody };
}

/** Primary side: answers the workers' questions. */
export function answerCallQuestions(
  egress: () => EgressService | undefined,
  snapshot: () => Snapshot | undefined,
  reply: (workerId: number, payload: CallsAnswer) => void,
): (payload: unknown, workerId: number) => void {
  return (payload, workerId) => {
    const question = payload as CallsQuestion;
    if (typeof question?.id !== 'number' || typeof question.requestId !== 'string') return;
    const calls = takePairCalls(egress(), snapshot(), question.requestId);
    reply(workerId, {
      id: question.id,
      calls: calls
        ? { live: calls.live.map(toWire), dark: calls.dark.map(toWire), baseline: calls.baseline.map(toWire), ignoreBody: { ...calls.ignoreBody } }
        : null,
    });
  };
}

interface Waiting {
  readonly pair: MirroredPair;
  readonly timer: NodeJS.Timeout;
}

/** Worker side: a pair sink that fetches each pair's calls from the primary first. */
export class RemoteCallsSink implements PairSink {
  /** Pairs waiting for their calls, by the id of the question (a ticket: churn.ts says why not a Map). */
  private readonly waiting = new TicketTable<Waiting>();

  constructor(
    private readonly next: PairSink,
    private readonly ask: (question: CallsQuestion) => void,
    private readonly maxWaiting: () => number,
    private readonly timeoutMs = 5000,
  ) {}

  submit(pair: MirroredPair): void {
    if (this.waiting.size >= this.maxWaiting()) return this.next.submit(pair);
    let id = 0;
    const timer = setTimeout(() => this.settle(id, undefined), this.timeoutMs);
    timer.unref();
    id = this.waiting.add({ pair, timer });
    this.ask({ id, requestId: pair.requestId });
  }

  notCompared(pair: UncomparedPair): void {
    this.next.notCompared(pair);
  }

  bodyHash(route: string): BodyHash | undefined {
    return this.next.bodyHash?.(route);
  }

  /** An answer from the primary. */
  answer(payload: unknown): void {
    const answer = payload as CallsAnswer;
    if (typeof answer?.id !== 'number') return;
    const calls = answer.calls;
    this.settle(
      answer.id,
      calls
        ? { live: calls.live.map(fromWire), dark: calls.dark.map(fromWire), baseline: (calls.baseline ?? []).map(fromWire), ignoreBody: calls.ignoreBody }
        : undefined,
    );
  }

  private settle(id: number, calls: PairCalls | undefined): void {
    const entry = this.waiting.take(id);
    if (entry) this.pass(entry, calls);
  }

  /** Passes on everything still waiting, without calls (shutdown). */
  flush(): void {
    for (const entry of this.waiting.takeAll()) this.pass(entry, undefined);
  }

  private pass(entry: Waiting, calls: PairCalls | undefined): void {
    clearTimeout(entry.timer);
    this.next.submit(calls ? { ...entry.pair, calls } : entry.pair);
  }
}
