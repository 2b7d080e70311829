/**
 * Following a gateway's Server-Sent Event stream (GET /diffs), for the CLI.
 * JSON calls go through http-client.ts; this is its streaming sibling, on
 * the same undici client (http or https, token, CA), with the same errors:
 * AdminRequestError naming the address.
 */
import type { Dispatcher } from 'undici';
import { AdminRequestError } from '../errors.js';
import { adminDispatcher, adminHeaders, undici, unreachable, type AdminAccess } from './http-client.js';
import { SseParser, type SseMessage } from './sse.js';

export interface EventStream {
  /** Resolves when the server ends the stream or it breaks. */
  readonly ended: Promise<void>;
  /** The last event id received (to resume with). */
  readonly lastEventId: string | undefined;
  close(): void;
}

export interface StreamOptions extends AdminAccess {
  /** Resume after this event: the gateway replays what came since. */
  readonly lastEventId?: string;
  /** Time allowed until the stream is open. */
  readonly timeoutMs?: number;
  readonly onMessage: (message: SseMessage) => void;
}

async function refusal(url: URL, status: number, body: Dispatcher.ResponseData['body']): Promise<AdminRequestError> {
  let text = '';
  for await (const chunk of body) {
    if (text.length < 64 * 1024) text += String(chunk);
  }
  let detail: string;
  try {
    detail = (JSON.parse(text) as { error?: string }).error ?? `status ${status}`;
  } catch {
    detail = `status ${status}`;
  }
  const hint = status === 401 ? ' (pass --token or set $GATEWAYCTL_ADMIN_TOKEN)' : '';
  return new AdminRequestError(`${url.origin}${url.pathname}: ${detail}${hint}`, status);
}

/**
 * Opens `path` (with `query`) on the admin API at `base`. Resolves once the
 * gateway accepted the stream; rejects with AdminRequestError otherwise.
 */
export async function openEventStream(
  base: string,
  path: string,
  query: Record<string, string | number | undefined>,
  options: StreamOptions,
): Promise<EventStream> {
  let url: URL;
  try {
    url = new URL(path, base.endsWith('/') ? base : base + '/');
  } catch {
    throw new AdminRequestError(`"${base}" is not an admin URL`);
  }
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
  // The time allowed covers the opening; once open, the stream may stay quiet.
  const dispatcher = await adminDispatcher(options, options.timeoutMs ?? 10_000, 0);
  const { request } = await undici();
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, {
      dispatcher,
      headers: { ...adminHeaders(options, 'text/event-stream'), ...(options.lastEventId ? { 'last-event-id': options.lastEventId } : {}) },
    });
  } catch (err) {
    void dispatcher.destroy();
    throw unreachable(url, err);
  }
  const opened = res.statusCode === 200 && String(res.headers['content-type'] ?? '').startsWith('text/event-stream');
  if (!opened) {
    const error = res.statusCode !== 200 ? await refusal(url, res.statusCode, res.body) : new AdminRequestError(`${url.origin}${url.pathname}: not an event stream`);
    void dispatcher.destroy();
    throw error;
  }
  const body = res.body;
  const parser = new SseParser();
  body.setEncoding('utf8');
  const ended = new Promise<void>((resolve) => {
    body.on('data', (chunk: string) => {
      for (const message of parser.push(chunk)) options.onMessage(message);
    });
    body.once('end', resolve);
    body.once('close', resolve);
    body.once('error', () => resolve());
  }).finally(() => void dispatcher.destroy());
  return {
    ended,
    get lastEventId() {
      return parser.lastId;
    },
    close: () => body.destroy(),
  };
}
