/**
 * Following a gateway's Server-Sent Event stream (GET /diffs), for the CLI.
 * JSON calls go through http-client.ts; this is its streaming sibling, with
 * the same errors: AdminRequestError naming the address.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { AdminRequestError } from '../errors.js';
import { unreachable, type AdminAccess } from './http-client.js';
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

function connect(url: URL, options: StreamOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, {
      agent: false,
      ...(options.ca ? { ca: options.ca } : {}),
      headers: {
        accept: 'text/event-stream',
        ...(options.lastEventId ? { 'last-event-id': options.lastEventId } : {}),
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
    });
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.once('response', (res) => {
      req.setTimeout(0);
      resolve(res);
    });
    req.on('error', (err) => reject(unreachable(url, err)));
    req.end();
  });
}

async function refusal(url: URL, res: IncomingMessage): Promise<AdminRequestError> {
  const status = res.statusCode ?? 0;
  let text = '';
  for await (const chunk of res) {
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
  const res = await connect(url, options);
  if (res.statusCode !== 200) throw await refusal(url, res);
  if (!String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
    res.destroy();
    throw new AdminRequestError(`${url.origin}${url.pathname}: not an event stream`);
  }
  const parser = new SseParser();
  res.setEncoding('utf8');
  const ended = new Promise<void>((resolve) => {
    res.on('data', (chunk: string) => {
      for (const message of parser.push(chunk)) options.onMessage(message);
    });
    res.once('end', resolve);
    res.once('close', resolve);
    res.once('error', () => resolve());
  });
  return {
    ended,
    get lastEventId() {
      return parser.lastId;
    },
    close: () => res.destroy(),
  };
}
