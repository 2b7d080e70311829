/**
 * Compiles a validated config into an immutable snapshot the proxy runs
 * from: matchers, pickers and samplers built once, upstream URLs parsed once.
 * A reload compiles a new snapshot and swaps it in whole; requests in flight
 * keep the snapshot they started with.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { compileMatcher, type Matcher, type RequestFacts } from '../routing/matcher.js';
import { StickyPicker } from '../routing/sticky.js';
import { SmoothWeightedPicker } from '../routing/weighted.js';
import { clientTls, type ClientTls } from '../tls/upstream.js';
import type { DependencyConfig, DiffConfig, GatewayConfig, RouteConfig, ShadowConfig, UpstreamConfig, UpstreamTlsConfig } from './types.js';
import { defaultsAt, outlierDetectionConfig, retryConfig } from './defaults.js';

export interface CompiledUpstream {
  readonly name: string;
  readonly config: UpstreamConfig;
  readonly target: URL;
  /** Response timeout after defaults. */
  readonly timeoutMs: number;
  /** Identity of the endpoint pool (src/upstream/): snapshots with equal keys share one. */
  readonly poolKey: string;
  /** How an https:// upstream is verified; undefined for http://. */
  readonly tls: ClientTls | undefined;
}

/** A dependency reached through the egress (src/egress/). */
export interface CompiledDependency {
  readonly name: string;
  readonly config: DependencyConfig;
  /** How the live side reaches it: an upstream like any other. */
  readonly upstream: CompiledUpstream;
  readonly passthrough: ReadonlySet<string>;
}

/**
 * Counter-based sampling (as Traefik mirrors): the realised share equals the
 * percentage over every short window, with no randomness.
 */
export class PercentSampler {
  private seen = 0;
  private taken = 0;
  constructor(readonly percent: number) {}
  take(): boolean {
    if (this.percent >= 100) return true;
    if (this.percent <= 0) return false;
    this.seen++;
    if (this.taken * 100 < this.seen * this.percent) {
      this.taken++;
      return true;
    }
    return false;
  }
}

export interface CompiledShadow {
  readonly config: ShadowConfig;
  readonly upstream: CompiledUpstream;
  readonly methods: ReadonlySet<string>;
  readonly sampler: PercentSampler;
}

export interface CompiledRoute {
  readonly index: number;
  readonly name: string;
  readonly config: RouteConfig;
  readonly matches: Matcher;
  readonly shadows: readonly CompiledShadow[];
  readonly diff: DiffConfig;
  readonly baseline: CompiledUpstream | undefined;
  /** %2F may stay in this route's paths. */
  readonly keepEscapedSlashes: boolean;
  /** The backend for a request: sticky when the request carries the key. */
  pickBackend(headers: IncomingHttpHeaders): CompiledUpstream;
}

export interface SnapshotMeta {
  /** Generation of the config it serves (gatewayctl_config_generation, GET /config). */
  readonly generation: number;
  /** Path of the config file it came from. */
  readonly source: string;
  readonly loadedAt: Date;
}

export interface Snapshot extends SnapshotMeta {
  /**
   * Counts the snapshots compiled for serving, a release's moves included
   * (they keep the config generation): unique per applied snapshot, so a
   * worker's acknowledgement names exactly the snapshot it took. 0 outside
   * serving (validate).
   */
  readonly servedGeneration: number;
  readonly config: GatewayConfig;
  /** sha256 of the normalized config: equal hashes mean equal behaviour. */
  readonly hash: string;
  readonly routes: readonly CompiledRoute[];
  readonly upstreams: ReadonlyMap<string, CompiledUpstream>;
  /** Some route keeps %2F: paths are screened with it kept, and routes that reject it refuse it after routing. */
  readonly keepEscapedSlashes: boolean;
  readonly dependencies: ReadonlyMap<string, CompiledDependency>;
  /** First route, in file order, that matches; undefined for none. */
  route(facts: RequestFacts): CompiledRoute | undefined;
}

/** Hashes of frozen (validated) configs: the reload decision and the snapshot share one. */
const hashes = new WeakMap<GatewayConfig, string>();

export function configHash(config: GatewayConfig): string {
  const known = hashes.get(config);
  if (known !== undefined) return known;
  const hash = createHash('sha256').update(JSON.stringify(config)).digest('hex');
  if (Object.isFrozen(config)) hashes.set(config, hash);
  return hash;
}

export function compileSnapshot(config: GatewayConfig, meta: SnapshotMeta & { readonly servedGeneration?: number }): Snapshot {
  const upstreams = new Map<string, CompiledUpstream>();
  for (const u of Object.values(config.upstreams)) upstreams.set(u.name, compileUpstream(u, config.timeouts.upstreamMs));
  const dependencies = new Map<string, CompiledDependency>();
  for (const d of Object.values(config.dependencies ?? {})) {
    const upstream = compileUpstream(
      singleUrlUpstream(d.name, d.url, d.tls),
      config.timeouts.upstreamMs,
    );
    dependencies.set(d.name, { name: d.name, config: d, upstream, passthrough: new Set(d.passthrough) });
  }
  const upstream = (name: string) => {
    const found = upstreams.get(name);
    if (!found) throw new Error(`compile: upstream ${name} missing after validation`);
    return found;
  };

  const routes = config.routes.map((route, index) => compileRoute(route, index, upstream));
  const routeCount = routes.length;
  const snapshot: Snapshot = {
    generation: meta.generation,
    servedGeneration: meta.servedGeneration ?? 0,
    source: meta.source,
    loadedAt: meta.loadedAt,
    config,
    hash: configHash(config),
    routes,
    upstreams,
    keepEscapedSlashes: routes.some((r) => r.keepEscapedSlashes),
    dependencies,
    route(facts) {
      for (let i = 0; i < routeCount; i++) {
        const r = routes[i]!;
        if (r.matches(facts)) return r;
      }
      return undefined;
    },
  };
  return Object.freeze(snapshot);
}

/** An upstream of one URL with every default (an egress dependency's). */
function singleUrlUpstream(name: string, url: string, tls: UpstreamTlsConfig | undefined): UpstreamConfig {
  const defaults = defaultsAt('upstreams.*');
  return {
    name,
    url,
    endpoints: [{ name: '0', url, weight: defaultsAt('upstreams.*.endpoints.*')['weight'] }],
    healthCheck: undefined,
    outlierDetection: outlierDetectionConfig(),
    retry: retryConfig(),
    poolTimeoutMs: defaults['connectTimeout'],
    timeoutMs: undefined,
    connectTimeoutMs: defaults['connectTimeout'],
    maxSockets: defaults['maxSockets'],
    ...(tls ? { tls } : {}),
  };
}

function compileUpstream(u: UpstreamConfig, defaultTimeoutMs: number): CompiledUpstream {
  const target = new URL(u.url);
  const tls = clientTls(target, u.tls);
  return {
    name: u.name,
    config: u,
    target,
    timeoutMs: u.timeoutMs ?? defaultTimeoutMs,
    // The name is part of it: endpoint health and metrics belong to one upstream.
    poolKey: JSON.stringify([
      u.name,
      u.endpoints,
      u.connectTimeoutMs,
      u.maxSockets,
      u.healthCheck ?? null,
      u.outlierDetection,
      u.retry,
      tls ? tls.identity : null,
    ]),
    tls,
  };
}

function compileRoute(route: RouteConfig, index: number, upstream: (name: string) => CompiledUpstream): CompiledRoute {
  const entries = route.backends.map((b) => ({ name: b.upstream, item: upstream(b.upstream), weight: b.weight }));
  const weighted = new SmoothWeightedPicker(entries);
  const keyOf = stickyKeyReader(route);
  const sticky = keyOf ? new StickyPicker(entries) : undefined;
  const single = weighted.size === 1 ? weighted.pick() : undefined;

  let pickBackend: (headers: IncomingHttpHeaders) => CompiledUpstream;
  if (single) pickBackend = () => single;
  else if (sticky && keyOf) {
    pickBackend = (headers) => {
      const key = keyOf(headers);
      return key ? sticky.pick(key) : weighted.pick();
    };
  } else pickBackend = () => weighted.pick();

  const shadows = route.shadow.map((s) => ({
    config: s,
    upstream: upstream(s.upstream),
    methods: new Set(s.methods),
    sampler: new PercentSampler(s.percent),
  }));

  return Object.freeze({
    index,
    name: route.name,
    config: route,
    matches: compileMatcher(route.match),
    shadows,
    diff: route.diff,
    baseline: route.diff.baseline ? upstream(route.diff.baseline) : undefined,
    keepEscapedSlashes: route.escapedSlashes === 'keep',
    pickBackend,
  });
}

/** Reads the sticky key from a request, or undefined when it has none. */
function stickyKeyReader(route: RouteConfig): ((headers: IncomingHttpHeaders) => string | undefined) | undefined {
  const sticky = route.sticky;
  if (!sticky) return undefined;
  if ('header' in sticky) {
    const name = sticky.header;
    return (headers) => {
      const value = headers[name];
      const key = Array.isArray(value) ? value[0] : value;
      return key ? key : undefined;
    };
  }
  const name = sticky.cookie;
  return (headers) => cookieValue(headers.cookie, name);
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  let start = 0;
  while (start < header.length) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', start);
    if (eq > start && eq < end && header.slice(start, eq).trim() === name) {
      let value = header.slice(eq + 1, end).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      return value || undefined;
    }
    start = end + 1;
  }
  return undefined;
}
