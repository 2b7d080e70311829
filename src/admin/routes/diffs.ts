/**
 * The diff endpoints of the admin API.
 *
 *   GET /diffs           Server-Sent Events: `event: diff`, `id: <event id>`,
 *                        `data: <event JSON>`; ?route=NAME, ?shadow=UPSTREAM
 *                        filter; ?replay=N first sends up to N recent events
 *                        from the ring; a Last-Event-ID header (sent by
 *                        reconnecting clients) replays what was missed.
 *   GET /diffs/summary   JSON counts per route and shadow target; same
 *                        filters, ?top=N keeps the N most differing paths.
 *   GET /diffs/examples/ID               one differing pair in full:
 *                                        {event, example} (recent events)
 *   GET /diffs/examples?route=&shadow=&kind=&path=
 *                                        the latest pair of a finding (a
 *                                        summary row: kind and template path)
 *
 * A slow subscriber never grows memory without bound: while its socket
 * buffer is over the limit, events for it are skipped and counted, and an
 * `event: lag` frame with `{"skipped": N}` tells it so once it catches up.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DiffStore, EventFilter } from '../../diff/store.js';
import type { DiffEvent } from '../../diff/types.js';
import { ErrorCodes, GatewayError } from '../../errors.js';
import { sseComment, sseFrame } from '../sse.js';
import { decodeSegment, sendJson, type AdminRoute } from './reply.js';

export interface DiffRoutesOptions {
  /** Interval of keep-alive comments on idle streams. */
  readonly keepAliveMs?: number;
  /** Bytes buffered for one subscriber before its events are skipped. */
  readonly maxBufferedBytes?: number;
  /** Reconnection delay advised to clients. */
  readonly retryMs?: number;
}

function filterOf(url: URL): EventFilter {
  const route = url.searchParams.get('route') ?? undefined;
  const shadow = url.searchParams.get('shadow') ?? undefined;
  return { ...(route ? { route } : {}), ...(shadow ? { shadow } : {}) };
}

function count(url: URL, name: string, max: number): number | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return undefined;
  if (!/^\d{1,9}$/.test(raw)) throw new GatewayError(ErrorCodes.BAD_REQUEST, `?${name} must be a whole number, not "${raw}"`);
  return Math.min(Number(raw), max);
}

function lastEventId(req: IncomingMessage): string | undefined {
  const header = req.headers['last-event-id'];
  const value = Array.isArray(header) ? header[0] : header;
  return value && value.length <= 64 ? value : undefined;
}

export function diffRoutes(store: DiffStore, options: DiffRoutesOptions = {}): AdminRoute[] {
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const maxBuffered = options.maxBufferedBytes ?? 1024 * 1024;
  const retryMs = options.retryMs ?? 2000;

  const stream = (req: IncomingMessage, res: ServerResponse, url: URL): void => {
    const replay = count(url, 'replay', store.capacity);
    const filter = filterOf(url);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    req.socket.setNoDelay(true);
    res.write(`retry: ${retryMs}\n` + sseComment('gatewayctl diff stream'));

    let skipped = 0;
    const send = (event: DiffEvent): void => {
      if (res.writableLength > maxBuffered) {
        skipped++;
        return;
      }
      if (skipped > 0) {
        res.write(sseFrame('lag', JSON.stringify({ skipped })));
        skipped = 0;
      }
      res.write(sseFrame('diff', JSON.stringify(event), event.id));
    };

    const resume = lastEventId(req);
    const backlog =
      resume !== undefined
        ? store.recent(filter, { limit: store.capacity, afterId: resume })
        : replay
          ? store.recent(filter, { limit: replay })
          : [];
    for (const event of backlog) send(event);

    const unsubscribe = store.subscribe({ filter, deliver: send });
    const timer = setInterval(() => {
      if (res.writableLength <= maxBuffered) res.write(sseComment('keep-alive'));
    }, keepAliveMs);
    timer.unref();
    const done = () => {
      clearInterval(timer);
      unsubscribe();
    };
    res.once('close', done);
    res.once('error', done);
  };

  const summary = (_req: IncomingMessage, res: ServerResponse, url: URL): void => {
    sendJson(res, 200, store.summary(filterOf(url), count(url, 'top', 100_000)));
  };

  const example = (_req: IncomingMessage, res: ServerResponse, url: URL): void => {
    const q = (name: string) => url.searchParams.get(name) ?? '';
    const byId = url.pathname.startsWith('/diffs/examples/');
    const found = byId
      ? store.examples.get(decodeSegment(url.pathname.slice('/diffs/examples/'.length)))
      : store.examples.forFinding(q('route'), q('shadow'), q('kind'), q('path'));
    if (found) return sendJson(res, 200, found);
    const what = byId ? 'that event (examples are sampled: recent ones, a few a second, and the latest of each finding are kept)' : 'that finding (route, shadow, kind, path)';
    throw new GatewayError(ErrorCodes.NOT_FOUND, `no example pair kept for ${what}`);
  };

  return [
    // The stream and the example pairs carry response values: with
    // admin.token set they need it, like the calls that change state.
    { method: 'GET', path: '/diffs', requiresToken: true, handle: stream },
    { method: 'GET', path: '/diffs/summary', requiresToken: false, handle: summary },
    { method: 'GET', path: '/diffs/examples', requiresToken: true, handle: example },
    { method: 'GET', path: '/diffs/examples/', requiresToken: true, handle: example },
  ];
}
