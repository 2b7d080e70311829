/**
 * Following the diff streams of one or several gateways (one per replica).
 * Every stream must open at first; afterwards a stream that ends (a replica
 * restarting) is reopened with backoff, resuming from its last event id so
 * nothing in the replica's ring is missed or repeated.
 */
import type { DiffEvent } from '../diff/types.js';
import { isDiffEvent } from './answers.js';
import { openEventStream, type EventStream } from './event-stream.js';
import type { AdminAccess } from './http-client.js';
import type { SseMessage } from './sse.js';

export interface FollowOptions extends AdminAccess {
  readonly route?: string;
  readonly shadow?: string;
  /** Recent events each replica sends first. */
  readonly replay?: number;
  readonly onEvent: (event: DiffEvent, source: URL) => void;
  /** A replica skipped events because this client read too slowly. */
  readonly onLag?: (skipped: number, source: URL) => void;
  /** Reconnection news, for stderr. */
  readonly onNotice?: (text: string) => void;
  readonly maxBackoffMs?: number;
}

export interface Follower {
  stop(): void;
  /** Resolves once stopped. */
  readonly stopped: Promise<void>;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });

function parseData(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}

/** Opens every stream (rejecting, with all closed, if one cannot be opened), then follows them. */
export async function followDiffs(urls: readonly URL[], options: FollowOptions): Promise<Follower> {
  const abort = new AbortController();
  const open = new Set<EventStream>();
  const query = { route: options.route, shadow: options.shadow, replay: options.replay };
  const maxBackoff = options.maxBackoffMs ?? 5000;

  const connect = async (url: URL, lastEventId: string | undefined): Promise<EventStream> => {
    const onMessage = (message: SseMessage) => {
      if (abort.signal.aborted) return;
      if (message.event === 'diff') {
        // Whatever is not a diff event is passed over, as an unknown event would be.
        const event = parseData(message.data);
        if (isDiffEvent(event)) options.onEvent(event as DiffEvent, url);
      } else if (message.event === 'lag') {
        const skipped = (parseData(message.data) as { skipped?: unknown } | undefined)?.skipped;
        if (typeof skipped === 'number' && skipped > 0) options.onLag?.(skipped, url);
      }
    };
    const stream = await openEventStream(url.href, '/diffs', lastEventId ? { ...query, replay: undefined } : query, {
      ...(options.token ? { token: options.token } : {}),
      ...(options.ca ? { ca: options.ca } : {}),
      ...(lastEventId ? { lastEventId } : {}),
      onMessage,
    });
    open.add(stream);
    return stream;
  };

  const keepFollowing = async (url: URL, first: EventStream): Promise<void> => {
    let stream = first;
    for (;;) {
      await stream.ended;
      open.delete(stream);
      if (abort.signal.aborted) return;
      const resumeFrom = stream.lastEventId;
      options.onNotice?.(`lost the diff stream from ${url.origin}; reconnecting`);
      for (let attempt = 0; ; attempt++) {
        await sleep(Math.min(maxBackoff, 250 * 2 ** attempt), abort.signal);
        if (abort.signal.aborted) return;
        try {
          stream = await connect(url, resumeFrom);
          options.onNotice?.(`reconnected to ${url.origin}`);
          break;
        } catch (err) {
          if (attempt % 5 === 4) options.onNotice?.(`still cannot reach ${url.origin}: ${(err as Error).message}`);
        }
      }
      if (abort.signal.aborted) {
        stream.close();
        return;
      }
    }
  };

  const settled = await Promise.allSettled(urls.map((url) => connect(url, undefined)));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    abort.abort();
    for (const s of open) s.close();
    throw failed.reason;
  }
  const firsts = settled.map((s) => (s as PromiseFulfilledResult<EventStream>).value);
  const loops = urls.map((url, i) => keepFollowing(url, firsts[i]!));
  return {
    stop() {
      abort.abort();
      for (const s of open) s.close();
    },
    stopped: Promise.all(loops).then(() => undefined),
  };
}
