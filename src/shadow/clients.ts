/**
 * Connection pools for shadow copies, one keep-alive agent per endpoint origin,
 * separate from the primary's agents so a slow or dead shadow can never
 * hold a connection the user's path needs. The endpoint itself is picked by
 * the upstream's pool (src/upstream/), as for primary traffic, and each
 * copy's outcome feeds the same endpoint health.
 */
import http, { type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import https from 'node:https';
import { TLSSocket } from 'node:tls';
import { ByteBudget } from './byte-budget.js';
import { BodyCapture, BudgetedCapture, type Captured } from './capture.js';
import type { CompiledUpstream } from '../config/compile.js';
import { agentTlsOptions, type ClientTls } from '../tls/upstream.js';
import { sharedReadsAgent } from '../upstream/shared-reads.js';
import { Sweep } from '../upstream/deadlines.js';
import { connectionKey, FREE_SOCKET_TIMEOUT_MS, type Endpoint } from '../upstream/endpoint.js';
import { outcomeOfStatus, type UpstreamPool } from '../upstream/pool.js';
import { UpstreamPools } from '../upstream/pools.js';
import { ErrorCodes, GatewayError } from '../errors.js';

export interface CopyRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer | undefined;
  readonly timeoutMs: number;
  /** Nothing else will use the body: a copying thread may take its memory instead of a copy. */
  readonly handOver?: boolean;
}

export class ShadowTimeoutError extends GatewayError {
  constructor(ms: number, phase: 'connect' | 'answer' = 'answer') {
    super(ErrorCodes.SHADOW_TIMEOUT, phase === 'connect' ? `shadow copy could not connect within ${ms}ms` : `shadow copy timed out after ${ms}ms`);
    this.name = 'TimeoutError';
  }
}

export interface CopyAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Present when the answer was captured (asked for, and within the capture budget). */
  readonly capture: Captured | undefined;
  /** From sending to the answer's end, measured where the copy was sent. */
  readonly latencyMs: number;
  /** The longest the measuring thread was kept from running meanwhile, ms (stall-watch.ts). */
  readonly stalledMs?: number;
}

/** Where a copy goes: one endpoint's origin and how to connect to it. */
export interface CopyTarget {
  readonly origin: string;
  readonly tls: ClientTls | undefined;
  readonly connectTimeoutMs: number;
  readonly maxSockets: number;
}

export const copyTarget = (upstream: CompiledUpstream, endpoint: Endpoint): CopyTarget => ({
  origin: endpoint.origin,
  tls: endpoint.tls,
  connectTimeoutMs: upstream.config.connectTimeoutMs,
  maxSockets: upstream.config.maxSockets,
});

/** Connections are shared by endpoints with the same origin, TLS and pool settings. */
export const targetKey = (t: CopyTarget) => connectionKey(t, t);

/**
 * One copy on the wire: settles its promise exactly once.
 *
 * Its listeners are its own methods, bound, not closures made per copy: V8
 * keeps a closure's optimized code only while one of its instances lives,
 * so a copying thread's full collections, about one a second under load,
 * sent every such listener back to the compiler (bench/README.md, "Closures
 * made per call"). A bound method's code lives with the class.
 */
class CopyExchange {
  /** Its place among the copies in flight. */
  churnSlot = -1;
  /** Its kept bytes are held from the budget until the exchange settles. */
  private readonly capture: BudgetedCapture | undefined;
  private readonly started = performance.now();
  private readonly startedAt = Date.now();
  private request: ClientRequest | undefined;
  private response: IncomingMessage | undefined;
  private connected = false;
  private settled = false;
  private readonly failed: (error: Error) => void = this.fail.bind(this);

  constructor(
    private readonly inflight: Sweep<CopyExchange>,
    private readonly origin: OriginAgent,
    budget: ByteBudget,
    private readonly deadline: number,
    private readonly timeoutMs: number,
    private readonly connectTimeoutMs: number,
    captureBytes: number | undefined,
    /** Called once, with whether the endpoint answered well (for its health). */
    private readonly onSettled: ((ok: boolean) => void) | undefined,
    private readonly resolve: (answer: CopyAnswer) => void,
    private readonly reject: (err: Error) => void,
    private readonly onRead: ((bytes: number) => void) | undefined,
  ) {
    // HTTP/1.1 copies are never gRPC calls (those go over HTTP/2, h2-copies.ts): past the limit nothing reads the prefix.
    this.capture = captureBytes === undefined ? undefined : new BudgetedCapture(new BodyCapture(captureBytes, 'hash-only'), budget);
  }

  start(copy: CopyRequest): void {
    const origin = this.origin;
    const request = (origin.secure ? https : http).request({
      hostname: origin.hostname,
      port: origin.port,
      method: copy.method,
      path: copy.path,
      // Framed by its length whatever the method: node:http leaves a GET's body unframed.
      headers: copy.body ? { ...copy.headers, 'content-length': String(copy.body.length) } : copy.headers,
      agent: origin.agent,
    });
    this.request = request;
    request.once('socket', this.onSocket.bind(this));
    request.once('error', this.failed);
    request.once('response', this.onResponse.bind(this));
    request.end(copy.body);
  }

  private onSocket(socket: Socket): void {
    // A pooled socket is connected already; a new one says so when it is.
    if (!socket.connecting) this.connected = true;
    else socket.once(socket instanceof TLSSocket ? 'secureConnect' : 'connect', this.onConnect.bind(this));
  }

  private onConnect(): void {
    this.connected = true;
  }

  private onResponse(response: IncomingMessage): void {
    this.response = response;
    this.capture?.declare(response.headers['content-length']);
    response.on('data', this.onData.bind(this));
    response.once('error', this.failed);
    response.once('aborted', this.onAborted.bind(this));
    response.once('end', this.onEnd.bind(this));
  }

  private onData(chunk: Buffer): void {
    this.capture?.push(chunk);
    this.onRead?.(chunk.length);
  }

  private onAborted(): void {
    this.fail(Object.assign(new Error('shadow answer cut short'), { code: 'ECONNRESET' }));
  }

  private onEnd(): void {
    const response = this.response!;
    const status = response.statusCode ?? 0;
    if (this.settle(outcomeOfStatus(status) === 'ok')) {
      this.resolve({ status, headers: response.headers, capture: this.capture?.result(), latencyMs: performance.now() - this.started });
    }
  }

  /** The sweep's visit: false once the exchange is over or given up on. */
  watch(now: number): boolean {
    if (this.settled) return false;
    if (now >= this.deadline) this.expire(new ShadowTimeoutError(this.timeoutMs));
    else if (!this.connected && this.request && now - this.startedAt >= this.connectTimeoutMs && this.connectTimeoutMs < this.timeoutMs) {
      this.expire(new ShadowTimeoutError(this.connectTimeoutMs, 'connect'));
    }
    return !this.settled;
  }

  private expire(error: Error): void {
    if (!this.settle(false)) return;
    this.request?.destroy(error);
    this.reject(error);
  }

  fail(error: Error): void {
    if (!this.settle(false)) return;
    this.request?.destroy();
    this.reject(error);
  }

  private settle(ok: boolean): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.inflight.delete(this);
    // From here the answer (and its capture) is the receiver's to count.
    this.capture?.release();
    const origin = this.origin;
    if (--origin.inflight === 0 && origin.retired) origin.agent.destroy();
    this.onSettled?.(ok);
    return true;
  }
}

/**
 * Keep-alive agents by origin, and the copies in flight on them: what sends
 * a copy and reads its answer, in whichever thread holds it. node:http, as
 * for primary traffic: the same TLS rules (tls/upstream.ts), and no second
 * HTTP client loaded into every process and copying thread.
 */
export class OriginAgents {
  private readonly agents = new Map<string, OriginAgent>();
  /** The copies in flight, swept for their deadlines: no timer of their own. */
  private readonly inflight = new Sweep<CopyExchange>((exchange, now) => exchange.watch(now));
  /**
   * What their captures hold, not yet handed on with their answer. A copy
   * keeps its answer's prefix (up to diff.maxBodyBytes) until the answer
   * ends: unbounded, a shadow that sent a megabyte and then paused had 400
   * copies take the gateway from 87 to 529 MB. Past the limit a copy stops
   * capturing and lets go of what it kept: its pair is not compared (the
   * serving thread counts it). Unbounded unless a limit is set (the copying
   * thread sets it).
   */
  readonly captures = new ByteBudget();

  constructor(
    /** Told the size of each chunk of an answer read, once it is captured or counted (spent-buffers.ts). */
    private readonly onRead?: (bytes: number) => void,
  ) {}

  private agentFor(target: CopyTarget, key: string): OriginAgent {
    let entry = this.agents.get(key);
    if (!entry) {
      const options: http.AgentOptions = {
        keepAlive: true,
        maxSockets: Math.max(16, Math.min(target.maxSockets, 1024)),
        maxFreeSockets: 256,
        scheduling: 'lifo',
        timeout: FREE_SOCKET_TIMEOUT_MS,
      };
      const agent = target.tls ? new https.Agent({ ...options, ...agentTlsOptions(target.tls) }) : sharedReadsAgent(options);
      // The origin is parsed once per agent, not per copy.
      const url = new URL(target.origin);
      const secure = url.protocol === 'https:';
      const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
      entry = { agent, hostname, port: Number(url.port) || (secure ? 443 : 80), secure, inflight: 0, retired: false };
      this.agents.set(key, entry);
    }
    return entry;
  }

  /**
   * Sends one copy and reads its answer: captured up to `captureBytes`, or
   * counted and dropped when not comparing. The whole exchange is bounded by
   * `timeoutMs`, and a new connection by the target's connect timeout.
   */
  send(target: CopyTarget, copy: CopyRequest, captureBytes: number | undefined, key = targetKey(target), onSettled?: (ok: boolean) => void): Promise<CopyAnswer> {
    const entry = this.agentFor(target, key);
    entry.inflight++;
    return new Promise((resolve, reject) => {
      const exchange = new CopyExchange(this.inflight, entry, this.captures, Date.now() + copy.timeoutMs, copy.timeoutMs, target.connectTimeoutMs, captureBytes, onSettled, resolve, reject, this.onRead);
      this.inflight.add(exchange);
      try {
        exchange.start(copy);
      } catch (err) {
        exchange.fail(err as Error);
      }
    });
  }

  /** Retires the agents whose keys are not kept: closed once their copies in flight are over. */
  retainOnly(keep: ReadonlySet<string>): void {
    for (const [key, entry] of this.agents) {
      if (keep.has(key)) continue;
      this.agents.delete(key);
      entry.retired = true;
      if (entry.inflight === 0) entry.agent.destroy();
    }
  }

  async close(): Promise<void> {
    for (const entry of this.agents.values()) entry.agent.destroy();
    this.agents.clear();
    this.inflight.close();
  }
}

interface OriginAgent {
  readonly agent: http.Agent;
  readonly hostname: string;
  readonly port: number;
  readonly secure: boolean;
  inflight: number;
  retired: boolean;
}

/** What sends copies for the shadow path (in this thread, or in a shadow thread). */
export interface CopySender {
  /** Resolves once it can send without loading anything first. */
  ready(): Promise<void>;
  send(upstream: CompiledUpstream, copy: CopyRequest, captureBytes: number | undefined): Promise<CopyAnswer>;
  retainOnly(upstreams: Iterable<CompiledUpstream>): void;
  close(): Promise<void>;
}

/** The pool keys of these upstreams' endpoints. */
export function keptKeys(pools: UpstreamPools, upstreams: Iterable<CompiledUpstream>): Set<string> {
  return new Set([...upstreams].flatMap((u) => pools.poolFor(u).endpoints.map((e) => targetKey(copyTarget(u, e)))));
}

/** Copies sent from this thread. */
export class ShadowClients implements CopySender {
  private readonly origins = new OriginAgents();

  /** `upstreams`: the gateway's endpoint pools; a client of its own (egress) keeps its own. */
  constructor(private readonly upstreams: UpstreamPools = new UpstreamPools()) {}

  send(upstream: CompiledUpstream, copy: CopyRequest, captureBytes: number | undefined): Promise<CopyAnswer> {
    const pool = this.upstreams.poolFor(upstream);
    const endpoint = pool.pick();
    pool.begin(endpoint);
    const target = copyTarget(upstream, endpoint);
    return this.origins.send(target, copy, captureBytes, targetKey(target), (ok) => settleEndpoint(pool, endpoint, ok));
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  retainOnly(upstreams: Iterable<CompiledUpstream>): void {
    this.origins.retainOnly(keptKeys(this.upstreams, upstreams));
  }

  close(): Promise<void> {
    return this.origins.close();
  }
}

/** A copy's outcome, into its endpoint's health. */
export function settleEndpoint(pool: UpstreamPool, endpoint: Endpoint, ok: boolean): void {
  pool.finish(endpoint);
  pool.record(endpoint, ok ? 'ok' : 'failure');
}
