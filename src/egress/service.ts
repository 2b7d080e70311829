/**
 * The egress: two listeners between the services and their HTTP
 * dependencies. A service reaches dependency NAME at http://EGRESS/NAME/PATH.
 *
 *   live  forwarded to the real dependency (TLS, header hygiene and limits as
 *         for upstreams) and recorded under the request's x-request-id
 *   dark  answered from the live twin's recording (replayed), else from the
 *         dependency's Hoverfly simulation (simulated), else forwarded when
 *         its method is in `passthrough`, else refused with 502
 *
 * It runs in the gateway's control process (with --workers too), so a dark
 * call pairs with its live twin whichever worker served their requests.
 * It reads the snapshot in service at each call: a reload swaps dependencies,
 * simulations and limits whole.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { CompiledDependency, Snapshot } from '../config/compile.js';
import type { Logger } from '../log/logger.js';
import type { EgressOutcome, GatewayMetrics } from '../metrics/registry.js';
import { BASELINE_ID_SUFFIX, clientRequestId, isHopByHop, prepareUpstreamHeaders } from '../proxy/headers.js';
import { normalizeTarget, upstreamPath } from '../proxy/path.js';
import { sendError } from '../proxy/responses.js';
import { ShadowClients, ShadowTimeoutError } from '../shadow/clients.js';
import { BodyCapture } from '../shadow/capture.js';
import { RecordingStore, type EgressCall, type RecordedResponse, type RequestCalls } from './recordings.js';
import { matchSimulation, simulationIndexed } from './simulation.js';

export const EGRESS_HEADER = 'x-gatewayctl-egress';
export type Side = 'live' | 'dark';

export interface EgressAddresses {
  readonly live?: { host: string; port: number };
  readonly dark?: { host: string; port: number };
}

export interface DependencyStatus {
  readonly live: number;
  readonly dark: Record<string, number>;
  readonly recordings: number;
}

export interface EgressServiceOptions {
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  /** The snapshot in service. */
  readonly snapshot: () => Snapshot;
}

class Listener {
  readonly server: http.Server;
  readonly sockets = new Set<Duplex>();
  inflight = 0;
  constructor(
    snapshot: Snapshot,
    handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
    logger: Logger,
  ) {
    const { limits, timeouts } = snapshot.config;
    this.server = http.createServer(
      {
        maxHeaderSize: limits.maxHeaderBytes,
        headersTimeout: timeouts.headerMs,
        requestTimeout: 0,
        keepAliveTimeout: timeouts.idleMs,
        joinDuplicateHeaders: false,
        insecureHTTPParser: false,
      },
      (req, res) => {
        this.inflight++;
        res.once('close', () => this.inflight--);
        handle(req, res).catch((err: Error) => {
          logger.error('egress.crash', `egress call failed: ${err.stack ?? err.message}`);
          sendError(res, 500, 'internal error', undefined);
        });
      },
    );
    this.server.on('connection', (socket: Duplex) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server.on('clientError', (_err, socket: Duplex) => socket.destroy());
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port }, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve({ host, port: typeof address === 'object' && address ? address.port : port });
      });
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }
}

/** A call as it arrived: which dependency, and what it asked for. */
interface Arrived {
  readonly dependency: CompiledDependency;
  readonly requestId: string | undefined;
  readonly call: EgressCall;
  /** Path and query to send to the dependency. */
  readonly target: string;
}

type Answer = { readonly response: RecordedResponse; readonly outcome: EgressOutcome };

export class EgressService {
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly snapshot: () => Snapshot;
  readonly recordings: RecordingStore;
  /** Separate pools from the shadow copies': a slow dependency holds only its own. */
  private readonly clients = new ShadowClients();
  private readonly listeners: Partial<Record<Side, Listener>> = {};
  private readonly counts = new Map<string, { live: number; dark: Record<string, number> }>();
  addresses: EgressAddresses = {};
  private droppedCounted = 0;

  constructor(options: EgressServiceOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.snapshot = options.snapshot;
    this.recordings = new RecordingStore(
      () => {
        const config = this.snapshot().config;
        return { maxBytes: config.limits.recordBytes, ttlMs: config.timeouts.recordMs };
      },
      (bytes, dropped) => {
        this.metrics.egressRecordedBytes.set(bytes);
        if (dropped > this.droppedCounted) this.metrics.egressRecordingsDropped.inc(dropped - this.droppedCounted);
        this.droppedCounted = dropped;
      },
    );
  }

  /** Opens the listeners the config asks for (addresses override them, for tests). */
  async start(override?: { live?: { host: string; port: number }; dark?: { host: string; port: number } }): Promise<EgressAddresses> {
    const snapshot = this.snapshot();
    this.indexSimulations(snapshot);
    const egress = snapshot.config.egress;
    const out: { live?: { host: string; port: number }; dark?: { host: string; port: number } } = {};
    for (const side of ['live', 'dark'] as const) {
      const address = override?.[side] ?? egress?.[side];
      if (!address) continue;
      const listener = new Listener(snapshot, (req, res) => this.handle(side, req, res), this.logger);
      this.listeners[side] = listener;
      out[side] = await listener.listen(address.host, address.port);
    }
    this.addresses = out;
    if (out.live || out.dark) {
      this.logger.info('egress.listening', `egress listening: live ${fmt(out.live)}, dark ${fmt(out.dark)}`, { live: out.live, dark: out.dark });
    }
    return out;
  }

  /** Drops connection pools no dependency of the snapshot uses any more; indexes its simulations. */
  apply(snapshot: Snapshot): void {
    this.clients.retainOnly([...snapshot.dependencies.values()].map((d) => d.upstream));
    this.indexSimulations(snapshot);
  }

  /** Starts indexing each simulation as it is loaded, in slices, so the first dark call does not build it on the spot. */
  private indexSimulations(snapshot: Snapshot): void {
    for (const dependency of snapshot.dependencies.values()) {
      const pairs = dependency.config.simulation?.pairs;
      if (pairs && pairs.length > 0) void simulationIndexed(pairs);
    }
  }

  get inflight(): number {
    return (this.listeners.live?.inflight ?? 0) + (this.listeners.dark?.inflight ?? 0);
  }

  /** The calls a request caused, handed out once (its pair is being compared). */
  takeCalls(requestId: string): RequestCalls | undefined {
    return this.recordings.take(requestId);
  }

  status(): Record<string, DependencyStatus> {
    const held = this.recordings.heldByDependency();
    const out: Record<string, DependencyStatus> = {};
    for (const name of this.snapshot().dependencies.keys()) {
      const c = this.counts.get(name);
      out[name] = { live: c?.live ?? 0, dark: { ...(c?.dark ?? {}) }, recordings: held.get(name) ?? 0 };
    }
    return out;
  }

  /** Stops accepting, lets calls in flight finish (bounded), then closes. */
  async drain(deadlineMs: number): Promise<void> {
    const listeners = Object.values(this.listeners);
    const closed = Promise.all(listeners.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve()))));
    for (const l of listeners) l.server.closeIdleConnections();
    const idle = setInterval(() => {
      for (const l of listeners) l.server.closeIdleConnections();
    }, 100);
    await Promise.race([closed, new Promise<void>((resolve) => setTimeout(resolve, deadlineMs).unref())]);
    clearInterval(idle);
    await this.close();
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.listeners).map((l) => l.close()));
    this.recordings.close();
    await this.clients.close();
  }

  private count(dependency: string, side: Side, outcome: EgressOutcome, started: number): void {
    this.metrics.egressRequests.labels(dependency, side, outcome).inc();
    this.metrics.egressDuration.labels(dependency, side).observe((performance.now() - started) / 1000);
    let c = this.counts.get(dependency);
    if (!c) this.counts.set(dependency, (c = { live: 0, dark: {} }));
    if (side === 'live') c.live++;
    else c.dark[outcome] = (c.dark[outcome] ?? 0) + 1;
  }

  private async handle(side: Side, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const snapshot = this.snapshot();
    const { limits } = snapshot.config;
    const incomingId = clientRequestId(req.headers);
    if (req.headersDistinct && Object.keys(req.headersDistinct).length > limits.maxHeaderCount) {
      sendError(res, 431, 'too many request headers', incomingId, { close: true });
      return;
    }
    const arrived = this.parse(snapshot, req, res, incomingId);
    if (!arrived) return;
    const body = await readBody(req, limits.maxBodyBytes, snapshot.config.timeouts.bodyMs);
    if (body === 'too-large') {
      sendError(res, 413, 'request body too large', incomingId, { close: true });
      return;
    }
    if (body === 'failed') {
      res.destroy();
      return;
    }
    const call: EgressCall = { ...arrived.call, body };
    const { dependency, requestId } = arrived;
    let answer: Answer;
    if (side === 'live') {
      const entry = requestId ? this.recordings.startLive(requestId, call) : undefined;
      answer = await this.forward(arrived, req, body, 'forwarded');
      if (entry && requestId) this.recordings.answered(requestId, entry, answer.response, answer.outcome === 'error');
    } else {
      answer = await this.answerDark({ ...arrived, call }, req, body);
    }
    this.count(dependency.name, side, answer.outcome, started);
    reply(res, answer.response, side === 'dark' ? answer.outcome : undefined, req.method === 'HEAD');
  }

  private parse(snapshot: Snapshot, req: IncomingMessage, res: ServerResponse, requestId: string | undefined): Arrived | undefined {
    const normalized = normalizeTarget(req.url ?? '/');
    if (!normalized.ok || normalized.authority !== undefined) {
      sendError(res, 400, normalized.ok ? 'absolute-form targets are not accepted here' : normalized.reason, requestId);
      return undefined;
    }
    const slash = normalized.path.indexOf('/', 1);
    const name = slash < 0 ? normalized.path.slice(1) : normalized.path.slice(1, slash);
    const path = slash < 0 ? '/' : normalized.path.slice(slash);
    const dependency = snapshot.dependencies.get(name);
    if (!dependency) {
      sendError(res, 404, `no dependency "${name}": reach a dependency at /NAME/PATH`, requestId);
      return undefined;
    }
    const query = normalized.query;
    const target = upstreamPath(dependency.upstream.target, path + (query ? `?${query}` : ''));
    const q = target.indexOf('?');
    const call: EgressCall = {
      dependency: name,
      method: req.method ?? 'GET',
      path,
      query,
      targetPath: q < 0 ? target : target.slice(0, q),
      headers: { ...req.headers },
      body: Buffer.alloc(0),
      time: Date.now(),
    };
    return { dependency, requestId, call, target };
  }

  private async answerDark(arrived: Arrived, req: IncomingMessage, body: Buffer): Promise<Answer> {
    const { dependency, requestId, call } = arrived;
    // The diff baseline's calls are replayed from the same live twins, and kept apart.
    const baseline = requestId?.endsWith(BASELINE_ID_SUFFIX) ?? false;
    const groupId = baseline ? requestId!.slice(0, -BASELINE_ID_SUFFIX.length) : requestId;
    const noted = groupId ? this.recordings.dark(groupId, call, dependency.config.waitMs, baseline) : undefined;
    const settle = (answer: Answer): Answer => {
      if (noted) noted.entry.outcome = answer.outcome;
      return answer;
    };
    const twin = noted ? await noted.twin : undefined;
    if (twin?.response) return settle({ response: twin.response, outcome: 'replayed' });
    const pairs = dependency.config.simulation?.pairs;
    if (pairs && pairs.length > 0) {
      // Indexed as it was loaded: only a call right after a load waits.
      await simulationIndexed(pairs);
      const matched = matchSimulation(pairs, {
        method: call.method,
        path: call.targetPath,
        destination: dependency.upstream.target.host,
        scheme: dependency.upstream.target.protocol.slice(0, -1),
        query: queryValues(arrived.target),
        headers: headerValues(call.headers),
        body: body.toString('utf8'),
      });
      if (matched) {
        const r = matched.response;
        const headers: IncomingHttpHeaders = Object.create(null);
        for (const [k, v] of Object.entries(r.headers)) {
          // As for a forwarded answer, framing and the connection are this hop's (a recorded
          // Transfer-Encoding was sent beside the gateway's Content-Length, or closed the connection).
          if (isHopByHop(k.toLowerCase())) continue;
          headers[k.toLowerCase()] = v.length === 1 ? v[0] : [...v];
        }
        return settle({
          response: { status: r.status, headers, body: Buffer.from(r.body, r.encodedBody ? 'base64' : 'utf8') },
          outcome: 'simulated',
        });
      }
    }
    if (dependency.passthrough.has(call.method)) return settle(await this.forward(arrived, req, body, 'passthrough'));
    const text = JSON.stringify({
      error: `dark call to ${dependency.name} ${call.method} ${call.path} refused: no live twin, no simulation match, method not in passthrough`,
      ...(requestId ? { requestId } : {}),
    });
    return settle({
      response: { status: 502, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' }, body: Buffer.from(text) },
      outcome: 'refused',
    });
  }

  /** Sends the call to the real dependency; failures become the gateway's 502/504 answers. */
  private async forward(arrived: Arrived, req: IncomingMessage, body: Buffer, outcome: 'forwarded' | 'passthrough'): Promise<Answer> {
    const { dependency, requestId } = arrived;
    const snapshot = this.snapshot();
    const upstream = dependency.upstream;
    prepareUpstreamHeaders(req, {
      requestId: requestId ?? randomUUID(),
      peer: req.socket.remoteAddress ?? '',
      trustedPeer: false,
      encrypted: false,
    });
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && k !== 'content-length' && k !== 'transfer-encoding') headers[k] = v;
    headers['host'] = upstream.target.host;
    try {
      const answer = await this.clients.send(
        upstream,
        { method: arrived.call.method, path: arrived.target, headers, body: body.length > 0 ? body : undefined, timeoutMs: upstream.timeoutMs },
        snapshot.config.limits.maxBodyBytes,
      );
      if (answer.capture?.truncated) {
        return { response: gatewayAnswer(502, `response of ${dependency.name} larger than limits.maxBodyBytes`, requestId), outcome: 'error' };
      }
      const kept: IncomingHttpHeaders = {};
      for (const [k, v] of Object.entries(answer.headers)) if (!isHopByHop(k) && k !== 'content-length') kept[k] = v;
      return { response: { status: answer.status, headers: kept, body: answer.capture?.body ?? Buffer.alloc(0) }, outcome };
    } catch (err) {
      const timedOut = err instanceof ShadowTimeoutError || /TIMEOUT/.test((err as { code?: string }).code ?? '');
      this.logger.warn('egress.dependency', `${dependency.name}: ${(err as Error).message}`, { dependency: dependency.name, requestId });
      return {
        response: gatewayAnswer(timedOut ? 504 : 502, timedOut ? `${dependency.name} timed out` : `${dependency.name} unreachable`, requestId),
        outcome: 'error',
      };
    }
  }
}

function fmt(a: { host: string; port: number } | undefined): string {
  return a ? `${a.host}:${a.port}` : 'off';
}

function gatewayAnswer(status: number, error: string, requestId: string | undefined): RecordedResponse {
  return {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    body: Buffer.from(JSON.stringify(requestId ? { error, requestId } : { error })),
  };
}

function reply(res: ServerResponse, response: RecordedResponse, outcome: string | undefined, head: boolean): void {
  if (res.writableEnded || res.destroyed) return;
  const headers: Record<string, string | string[]> = Object.create(null);
  for (const [k, v] of Object.entries(response.headers)) if (v !== undefined) headers[k] = v;
  // A 204 has no body and may not state a length (Node leaves the body out, not the header).
  if (response.status === 204) delete headers['content-length'];
  else headers['content-length'] = String(response.body.length);
  if (outcome) headers[EGRESS_HEADER] = outcome;
  try {
    res.writeHead(response.status, headers);
    res.end(head ? undefined : response.body);
  } catch {
    res.destroy();
  }
}

function readBody(req: IncomingMessage, max: number, idleMs: number): Promise<Buffer | 'too-large' | 'failed'> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) {
    req.resume();
    return Promise.resolve('too-large');
  }
  return new Promise((resolve) => {
    const capture = new BodyCapture(max);
    req.setTimeout(idleMs, () => req.destroy());
    req.on('data', (chunk: Buffer) => {
      if (!capture.push(chunk)) {
        req.removeAllListeners('data');
        req.resume();
        resolve('too-large');
      }
    });
    req.once('end', () => resolve(capture.concat()));
    req.once('error', () => resolve('failed'));
    req.once('close', () => {
      if (!req.complete) resolve('failed');
    });
  });
}

function queryValues(target: string): Map<string, string[]> {
  const q = target.indexOf('?');
  const out = new Map<string, string[]>();
  if (q < 0) return out;
  for (const [k, v] of new URLSearchParams(target.slice(q + 1))) {
    const list = out.get(k);
    if (list) list.push(v);
    else out.set(k, [v]);
  }
  return out;
}

function headerValues(headers: IncomingHttpHeaders): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out.set(k, Array.isArray(v) ? v : [v]);
  return out;
}
