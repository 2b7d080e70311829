/**
 * Config validation: shape (shape.ts, against schema.ts) and meaning
 * (references, duplicates, clashes, coverage, risky settings) in one pass
 * that reports every problem. The result is the normalized, frozen
 * GatewayConfig that compile.ts turns into a runnable snapshot. `validate`
 * and `serve` (and every reload) run exactly this code.
 */
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { checkDependencies, checkEgress, type EgressReporter } from '../egress/check.js';
import { checkListenerTls, checkRouteHosts, checkUpstreamTls, type Reporter } from '../tls/check.js';
import { didYouMean, hasErrors, sortDiagnostics, type Diagnostic, type Severity } from './diagnostics.js';
import { parseConfigText, readConfigFile, type ConfigSource } from './load.js';
import { checkDescriptorFile } from './descriptor-file.js';
import { serviceOfPrefix } from '../protobuf/outline.js';
import { isSecretHeader } from '../diff/secrets.js';
import { compileMatcher, type RequestFacts } from '../routing/matcher.js';
import { defaultsAt, outlierDetectionConfig, retryConfig } from './defaults.js';
import { ACCESS_LOG_FIELDS, configSpec } from './schema.js';
import { INVALID, childPath, shapeDocument, type Position } from './shape.js';
import type {
  NumberTolerance,
  AdminConfig,
  BackendConfig,
  DiffConfig,
  GatewayConfig,
  LimitsConfig,
  RouteConfig,
  ReleaseConfig,
  ReleaseStep,
  RouteMatchConfig,
  ShadowConfig,
  StickyConfig,
  TimeoutsConfig,
  UpstreamConfig,
  AccessLogConfig,
  EscapedSlashes,
  EndpointConfig,
  HealthCheckConfig,
} from './types.js';
import { addressesClash, formatAddress, isLoopbackHost, type ListenAddress } from './units.js';

/** Methods mirrored by default: those without side effects. */
export const SAFE_METHODS: readonly string[] = defaultsAt('routes.*.shadow.*')['methods'];

/** Routes in one config: far above a real one; every route is compared with those before it. */
export const MAX_ROUTES = 5_000;

export interface ValidationResult {
  readonly source: ConfigSource;
  /** Present when there are no errors (warnings allowed). */
  readonly config: GatewayConfig | undefined;
  readonly diagnostics: readonly Diagnostic[];
}

/** Reads and validates a config file. Throws only when the file is unreadable. */
export function validateConfigFile(file: string): ValidationResult {
  return validateConfigSource(readConfigFile(file));
}

export function validateConfigSource(source: ConfigSource, env: NodeJS.ProcessEnv = process.env): ValidationResult {
  const parsed = parseConfigText(source);
  if (!parsed.doc) return { source, config: undefined, diagnostics: sortDiagnostics(parsed.diagnostics) };
  const shaped = shapeDocument(parsed.doc, parsed.lines, configSpec, source.file);
  const diagnostics = [...parsed.diagnostics, ...shaped.diagnostics];
  const checker = new MeaningChecker(env, source.file, shaped.positions, diagnostics);
  const config = shaped.value === INVALID ? undefined : checker.normalize(shaped.value as Raw);
  const sorted = sortDiagnostics(diagnostics);
  if (hasErrors(sorted) || !config) return { source, config: undefined, diagnostics: sorted };
  return { source, config: deepFreeze(config), diagnostics: sorted };
}

type Raw = Record<string, any>;

/** A mapping's written values over the schema's defaults for it. */
function withDefaults(path: string, written: Raw): Raw {
  return { ...defaultsAt(path), ...written };
}

class MeaningChecker {
  /** Relative file paths in the config (certificates) are relative to the config file. */
  private readonly baseDir: string;
  /** egress.dark is configured: mirrored writes reach dependencies only through it. */
  private darkEgress = false;
  private readonly reporter: Reporter = {
    error: (path, code, message) => this.error(path, code, message),
    warn: (path, code, message) => this.warn(path, code, message),
  };

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly file: string,
    private readonly positions: ReadonlyMap<string, Position>,
    private readonly diagnostics: Diagnostic[],
  ) {
    this.baseDir = dirname(resolve(file));
  }

  private at(path: string): Position {
    let p = path;
    for (;;) {
      const found = this.positions.get(p);
      if (found) return found;
      if (p === '') return { line: 1, column: 1 };
      const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
      p = cut > 0 ? p.slice(0, cut) : '';
    }
  }

  private report(severity: Severity, path: string, code: string, message: string): void {
    const { line, column } = this.at(path);
    this.diagnostics.push({ severity, code, message, path, file: this.file, line, column });
  }
  private error(path: string, code: string, message: string): void {
    this.report('error', path, code, message);
  }
  private warn(path: string, code: string, message: string): void {
    this.report('warning', path, code, message);
  }

  private escapedSlashes: EscapedSlashes = 'reject';

  normalize(raw: Raw): GatewayConfig | undefined {
    this.darkEgress = obj(raw['egress'])['dark'] !== undefined;
    const top = defaultsAt('');
    const listenForm = addressForm(raw['listen'], 'address');
    const listenAddress = withHost(listenForm.address, '0.0.0.0', top['listen']);
    const listen = listenForm.settings['h2c'] === true ? { ...listenAddress, h2c: true } : listenAddress;
    const admin = this.admin(raw['admin']);
    if (addressesClash(listen, admin)) {
      this.error('admin', 'address-clash', `admin address ${formatAddress(admin)} clashes with listen ${formatAddress(listen)}`);
    }
    const upstreams = this.upstreams(obj(raw['upstreams']), raw['upstreams'] !== undefined);
    const trustedProxies = this.trustedProxies(list(raw['trustedProxies']));
    const paths = { escapedSlashes: withDefaults('paths', obj(raw['paths']))['escapedSlashes'] as EscapedSlashes };
    this.escapedSlashes = paths.escapedSlashes;
    const routes = this.routes(list(raw['routes']), upstreams, raw['routes'] !== undefined);
    this.checkHttp2Reach(routes, upstreams);
    const limits = this.limits(obj(raw['limits']));
    const timeouts = this.timeouts(obj(raw['timeouts']));
    const stateDir: string = typeof raw['stateDir'] === 'string' ? raw['stateDir'] : top['stateDir'];
    const tls = raw['tls'] !== undefined ? checkListenerTls(obj(raw['tls']), this.baseDir, { listen, admin }, this.reporter) : undefined;
    if (tls) checkRouteHosts(list(raw['routes']), tls.names, this.reporter);
    const egressReporter: EgressReporter = {
      ...this.reporter,
      external: (d) => this.diagnostics.push(d),
      url: (text, path) => this.upstreamUrl(text, path),
    };
    const taken = [
      { name: 'listen', address: listen },
      { name: 'admin', address: admin },
    ];
    const egress = checkEgress(raw['egress'] as Raw | undefined, taken, egressReporter);
    const dependencies = checkDependencies(raw['dependencies'] as Raw | undefined, this.baseDir, egressReporter);
    if (!raw['upstreams'] || !raw['routes']) return undefined;
    const accessLog = raw['accessLog'] !== undefined ? this.accessLog(obj(raw['accessLog'])) : undefined;
    return {
      version: 1,
      listen,
      admin,
      upstreams,
      routes,
      paths,
      accessLog,
      trustedProxies,
      stateDir,
      limits,
      timeouts,
      ...(tls ? { tls: tls.config } : {}),
      ...(egress ? { egress } : {}),
      ...(Object.keys(dependencies).length > 0 ? { dependencies } : {}),
    };
  }

  private admin(raw: unknown): AdminConfig {
    const written = addressForm(raw, 'listen');
    const address = withHost(written.address, '127.0.0.1', defaultsAt('')['admin']);
    const allowedHosts = strings(written.settings['allowedHosts']).map((h) => h.toLowerCase());
    // A token kept out of the file (a Kubernetes Secret, a systemd credential).
    const token: string | undefined = written.settings['token'] ?? (this.env['GATEWAYCTL_ADMIN_TOKEN'] || undefined);
    if (!isLoopbackHost(address.host) && !token) {
      this.warn(
        'admin',
        'admin-exposed',
        `admin API on ${formatAddress(address)} is reachable beyond this machine without a token; ` +
          'anyone who can reach it can reload config and steer releases (set admin.token or $GATEWAYCTL_ADMIN_TOKEN, or bind 127.0.0.1)',
      );
    }
    return { host: address.host, port: address.port, token, allowedHosts };
  }

  private upstreams(raw: Raw, present: boolean): Record<string, UpstreamConfig> {
    const out: Record<string, UpstreamConfig> = Object.create(null);
    for (const [name, value] of Object.entries(raw)) {
      const path = childPath('upstreams', name);
      const spec = withDefaults('upstreams.*', typeof value === 'string' ? { url: value } : obj(value));
      const endpoints = this.endpoints(spec, typeof value === 'string' ? path : undefined, path);
      if (!endpoints) continue;
      const url = endpoints[0]!.url;
      const tls = checkUpstreamTls(spec['tls'], new URL(url), path, this.baseDir, this.reporter);
      const connectTimeoutMs: number = spec['connectTimeout'];
      out[name] = {
        name,
        url,
        endpoints,
        healthCheck: this.healthCheck(spec['healthCheck']),
        outlierDetection: outlierDetectionConfig(obj(spec['outlierDetection'])),
        retry: retryConfig(obj(spec['retry'])),
        poolTimeoutMs: spec['poolTimeout'] ?? connectTimeoutMs,
        timeoutMs: spec['timeout'],
        connectTimeoutMs,
        maxSockets: spec['maxSockets'],
        ...(tls ? { tls } : {}),
        ...(spec['protocol'] && spec['protocol'] !== 'http1' ? { protocol: spec['protocol'] } : {}),
      };
      this.checkProtocol(spec['protocol'], url, path);
    }
    if (present && Object.keys(raw).length === 0) this.error('upstreams', 'range', 'upstreams: define at least one upstream');
    return out;
  }

  /** Streaming calls are mirrored to HTTP/2 upstreams only: a streaming copy is one more stream on the upstream's session. */
  private checkHttp2Reach(routes: readonly RouteConfig[], upstreams: Record<string, UpstreamConfig>): void {
    const h2 = (name: string) => upstreams[name]?.protocol !== undefined && upstreams[name]?.protocol !== 'http1';
    routes.forEach((route, i) => {
      const path = `routes[${i}]`;
      route.shadow.forEach((s, j) => {
        if (!s.streaming || h2(s.upstream)) return;
        const sp = `${path}.shadow[${j}].streaming`;
        this.warn(sp, 'never', `${sp}: streaming calls are mirrored to h2/h2c upstreams only; "${s.upstream}" speaks HTTP/1.1, so this shadow mirrors unary calls only`);
      });
    });
  }

  /** HTTP/2 over TLS needs an https:// URL; cleartext h2c an http:// one. */
  private checkProtocol(protocol: unknown, url: string, path: string): void {
    const secure = url.startsWith('https:');
    if (protocol === 'h2' && !secure) {
      this.error(childPath(path, 'protocol'), 'protocol', `${path}.protocol: h2 is HTTP/2 over TLS and needs an https:// URL (use h2c for cleartext HTTP/2)`);
    } else if (protocol === 'h2c' && secure) {
      this.error(childPath(path, 'protocol'), 'protocol', `${path}.protocol: h2c is cleartext HTTP/2 and needs an http:// URL (use h2 over TLS)`);
    }
  }

  /**
   * An upstream's instances: `url` is one endpoint named "0". Every endpoint
   * shares the scheme and base path, so TLS settings and paths apply alike.
   */
  private endpoints(spec: Raw, scalarPath: string | undefined, path: string): EndpointConfig[] | undefined {
    if (typeof spec['url'] === 'string') {
      const url = this.upstreamUrl(spec['url'], scalarPath ?? childPath(path, 'url'));
      return url ? [{ name: '0', url, weight: defaultsAt('upstreams.*.endpoints.*')['weight'] }] : undefined;
    }
    const out: EndpointConfig[] = [];
    const names = new Set<string>();
    let invalid = false;
    list(spec['endpoints']).forEach((item, i) => {
      const ep = childPath(childPath(path, 'endpoints'), i);
      const entry = withDefaults('upstreams.*.endpoints.*', typeof item === 'string' ? { url: item } : obj(item));
      if (typeof entry['url'] !== 'string') return void (invalid = true);
      const url = this.upstreamUrl(entry['url'], typeof item === 'string' ? ep : childPath(ep, 'url'));
      if (!url) return void (invalid = true);
      const name = typeof entry['name'] === 'string' ? entry['name'] : String(i);
      if (names.has(name)) {
        this.error(ep, 'duplicate', `${ep}: endpoint name "${name}" is used twice`);
        invalid = true;
      }
      names.add(name);
      const first = out[0];
      if (first) {
        const a = new URL(first.url);
        const b = new URL(url);
        if (a.protocol !== b.protocol || a.pathname !== b.pathname) {
          this.error(ep, 'endpoint-mismatch', `${ep}: every endpoint of an upstream needs the same scheme and base path as the first ("${first.url}")`);
          invalid = true;
        }
      }
      out.push({ name, url, weight: entry['weight'] });
    });
    return invalid || out.length === 0 ? undefined : out;
  }

  private accessLog(written: Raw): AccessLogConfig | undefined {
    const a = withDefaults('accessLog', written);
    if (typeof a['path'] !== 'string') return undefined;
    const headers = strings(a['headers']).map((h) => h.toLowerCase());
    headers.forEach((h, i) => {
      if (isSecretHeader(h)) {
        this.error(childPath(childPath('accessLog', 'headers'), i), 'secret-header', `accessLog.headers: "${h}" may carry credentials; secrets are never logged`);
      }
    });
    return {
      path: a['path'] === 'stdout' ? 'stdout' : resolve(this.baseDir, a['path']),
      format: a['format'],
      fields: a['fields'] ? [...new Set(strings(a['fields']))] : [...ACCESS_LOG_FIELDS],
      headers: [...new Set(headers)],
    };
  }

  private healthCheck(raw: unknown): HealthCheckConfig | undefined {
    if (raw === undefined) return undefined;
    const h = withDefaults('upstreams.*.healthCheck', obj(raw));
    if (typeof h['path'] !== 'string') return undefined;
    return {
      path: h['path'],
      intervalMs: h['interval'],
      timeoutMs: h['timeout'],
      healthyThreshold: h['healthyThreshold'],
      unhealthyThreshold: h['unhealthyThreshold'],
    };
  }

  private upstreamUrl(text: string, path: string): string | undefined {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      this.error(path, 'url', `${path}: "${text}" is not a valid URL`);
      return undefined;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      this.error(path, 'url', `${path}: only http:// and https:// upstreams are supported, got "${url.protocol}"`);
      return undefined;
    }
    if (url.username || url.password) {
      this.error(path, 'url', `${path}: credentials in upstream URLs are not supported (they would leak into logs)`);
      return undefined;
    }
    if (url.search || url.hash || text.includes('?') || text.includes('#')) {
      this.error(path, 'url', `${path}: an upstream URL cannot carry a query or fragment`);
      return undefined;
    }
    if (!url.hostname) {
      this.error(path, 'url', `${path}: "${text}" has no host`);
      return undefined;
    }
    // Keep the base path (without a trailing slash) so it prefixes request paths.
    const base = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
    return `${url.protocol}//${url.host}${base}`;
  }

  private trustedProxies(raw: unknown[]): string[] {
    const out: string[] = [];
    raw.forEach((entry, i) => {
      if (typeof entry !== 'string') return;
      const path = childPath('trustedProxies', i);
      const [address, bits] = entry.split('/');
      const family = isIP(address ?? '');
      const max = family === 6 ? 128 : 32;
      if (family === 0 || (bits !== undefined && (Number(bits) > max || bits === ''))) {
        this.error(path, 'format', `${path}: "${entry}" is not an IP address or CIDR range`);
        return;
      }
      out.push(entry);
    });
    return out;
  }

  private routes(raw: unknown[], upstreams: Record<string, UpstreamConfig>, present: boolean): RouteConfig[] {
    const out: RouteConfig[] = [];
    if (raw.length > MAX_ROUTES) {
      // Checking them would take long (coverage compares pairs): refused first.
      this.error('routes', 'too-many', `routes: ${raw.length} routes; the limit is ${MAX_ROUTES}`);
      return out;
    }
    const names = new Map<string, number>();
    raw.forEach((value, i) => {
      if (value === INVALID || value === null || typeof value !== 'object') return;
      const path = childPath('routes', i);
      const r = value as Raw;
      const name = r['name'] as string | undefined;
      if (name !== undefined) {
        const first = names.get(name);
        if (first !== undefined) {
          this.error(
            childPath(path, 'name'),
            'duplicate',
            `${path}.name: route name "${name}" is already used by routes[${first}] (line ${this.at(childPath(childPath('routes', first), 'name')).line})`,
          );
        } else names.set(name, i);
      }
      const route = this.route(r, path, upstreams);
      if (route) out.push(route);
    });
    if (present && raw.length === 0) this.warn('routes', 'no-routes', 'routes: no routes; every request will get 404');
    this.coverage(out, raw);
    return out;
  }

  private route(r: Raw, path: string, upstreams: Record<string, UpstreamConfig>): RouteConfig | undefined {
    const match = this.match(obj(r['match']), childPath(path, 'match'));
    const backendsPath = childPath(path, 'backends');
    const backends: BackendConfig[] = [];
    const seenBackends = new Set<string>();
    list(r['backends']).forEach((b, j) => {
      if (b === INVALID || b === null || typeof b !== 'object') return;
      const bp = childPath(backendsPath, j);
      const upstream = (b as Raw)['upstream'] as string | undefined;
      if (upstream === undefined) return;
      this.reference(upstream, childPath(bp, 'upstream'), upstreams);
      if (seenBackends.has(upstream)) {
        this.error(childPath(bp, 'upstream'), 'duplicate', `${bp}.upstream: "${upstream}" is listed twice in this route's backends`);
        return;
      }
      seenBackends.add(upstream);
      backends.push({ upstream, weight: withDefaults('routes.*.backends.*', b as Raw)['weight'] });
    });
    if (backends.length > 0 && backends.every((b) => b.weight === 0)) {
      this.error(backendsPath, 'weights', `${backendsPath}: every weight is 0, so no backend can take a request`);
    }

    const shadow: ShadowConfig[] = [];
    const seenShadows = new Set<string>();
    list(r['shadow']).forEach((s, j) => {
      if (s === INVALID || s === null || typeof s !== 'object') return;
      const sp = childPath(childPath(path, 'shadow'), j);
      const raw = withDefaults('routes.*.shadow.*', s as Raw);
      const upstream = raw['upstream'] as string | undefined;
      if (upstream === undefined) return;
      this.reference(upstream, childPath(sp, 'upstream'), upstreams);
      if (seenShadows.has(upstream)) {
        this.error(childPath(sp, 'upstream'), 'duplicate', `${sp}.upstream: "${upstream}" is already a shadow target of this route`);
        return;
      }
      seenShadows.add(upstream);
      if (seenBackends.has(upstream)) {
        this.warn(
          childPath(sp, 'upstream'),
          'shadow-is-backend',
          `${sp}.upstream: "${upstream}" is also a backend of this route; it will receive some requests twice`,
        );
      }
      const methods = upper(raw['methods']);
      const unsafe = methods.filter((m) => !SAFE_METHODS.includes(m));
      // gRPC calls are all POST: the method says nothing of whether a call writes.
      const grpcRoute = match?.grpc === true;
      if (grpcRoute && !methods.includes('POST')) {
        this.warn(childPath(sp, 'methods'), 'never', `${sp}.methods: gRPC calls are POST; without POST this shadow mirrors no call`);
      }
      // With a dark egress the copies' side effects go through it, answered and compared.
      if (grpcRoute && unsafe.length > 0 && !this.darkEgress) {
        this.warn(
          childPath(sp, 'methods'),
          'unsafe-shadow',
          `${sp}.methods: gRPC calls are all POST, so every call of this route is mirrored to "${upstream}" ` +
            `(${raw['streaming'] === true ? 'streaming calls too, as streaming: true asks' : 'unary calls; streaming ones only with streaming: true'}), reads and writes alike; ` +
            'a call that writes (a second charge, a second order) is repeated unless it runs a dark profile that discards writes; ' +
            'copies carry the metadata "x-shadow-request: 1" to tell',
        );
      } else if (unsafe.length > 0 && !this.darkEgress) {
        this.warn(
          childPath(sp, 'methods'),
          'unsafe-shadow',
          `${sp}.methods: mirroring ${unsafe.join(', ')} repeats each request's side effects on "${upstream}" ` +
            '(a second charge, a second order) unless it runs a dark profile that discards writes; ' +
            'it receives "x-shadow-request: 1" to tell',
        );
      }
      const percent: number = raw['percent'];
      if (percent === 0) this.warn(childPath(sp, 'percent'), 'never', `${sp}.percent: 0 mirrors nothing`);
      const headers = obj(raw['headers']);
      const setHeaders: Record<string, string> = {};
      for (const [k, v] of Object.entries(obj(headers['set']))) if (typeof v === 'string') setHeaders[k.toLowerCase()] = v;
      for (const k of Object.keys(setHeaders)) {
        if (k === 'host' || k === 'content-length' || k === 'transfer-encoding' || k === 'x-shadow-request') {
          this.error(
            childPath(childPath(childPath(sp, 'headers'), 'set'), k),
            'header',
            `${sp}.headers.set: "${k}" cannot be set here${k === 'host' ? '; use shadow.host' : ''}`,
          );
        }
      }
      shadow.push({
        upstream,
        percent,
        methods,
        setHeaders,
        removeHeaders: strings(headers['remove']).map((h) => h.toLowerCase()),
        host: raw['host'] as string | undefined,
        credentials: raw['credentials'],
        streaming: raw['streaming'] === true,
      });
    });

    const releaseRaw = obj(r['release']);
    const releaseShadows = r['release'] !== undefined && list(withDefaults('routes.*.release', releaseRaw)['steps']).includes('shadow');
    const diff = this.diff(withDefaults('routes.*.diff', obj(r['diff'])), childPath(path, 'diff'), upstreams, backends, shadow, releaseShadows, match?.prefix);
    const sticky = r['sticky'] !== null && typeof r['sticky'] === 'object' ? (r['sticky'] as StickyConfig) : undefined;
    const normalizedSticky: StickyConfig | undefined = sticky
      ? 'header' in sticky
        ? { header: sticky.header.toLowerCase() }
        : { cookie: sticky.cookie }
      : undefined;
    const release = r['release'] !== undefined ? this.release(withDefaults('routes.*.release', releaseRaw), childPath(path, 'release'), upstreams, backends, shadow, diff) : undefined;
    if (typeof r['name'] !== 'string' || !match) return undefined;
    const escapedSlashes = (obj(r['paths'])['escapedSlashes'] ?? this.escapedSlashes) as EscapedSlashes;
    return { name: r['name'], match, backends, sticky: normalizedSticky, shadow, diff, release, escapedSlashes };
  }

  private release(
    r: Raw,
    path: string,
    upstreams: Record<string, UpstreamConfig>,
    backends: BackendConfig[],
    shadow: ShadowConfig[],
    diff: DiffConfig,
  ): ReleaseConfig | undefined {
    const candidate = typeof r['candidate'] === 'string' ? r['candidate'] : undefined;
    const cp = childPath(path, 'candidate');
    if (candidate !== undefined) {
      this.reference(candidate, cp, upstreams);
      if (backends.some((b) => b.upstream === candidate)) {
        this.error(cp, 'release', `${cp}: "${candidate}" is already a backend; backends are the stable version the release moves traffic away from`);
      }
      if (shadow.some((s) => s.upstream === candidate)) {
        this.error(cp, 'release', `${cp}: "${candidate}" is already a shadow target; the release mirrors to it during its shadow step`);
      }
      if (diff.baseline === candidate) this.error(cp, 'release', `${cp}: "${candidate}" is the diff baseline; a baseline runs the stable version`);
    }
    const steps: ReleaseStep[] = [];
    const sp = childPath(path, 'steps');
    list(r['steps']).forEach((step, i) => {
      const at = childPath(sp, i);
      if (step === 'shadow') {
        if (i !== 0) this.error(at, 'release', `${at}: "shadow" can only be the first step (a dark launch comes before any canary)`);
        else steps.push('shadow');
      } else if (typeof step === 'number') {
        const last = steps.at(-1);
        if (typeof last === 'number' && step <= last) {
          this.error(at, 'release', `${at}: canary steps must rise; ${step} follows ${last}`);
        } else steps.push(step);
      }
    });
    const last = steps.at(-1);
    if (last !== undefined && last !== 100) {
      this.warn(sp, 'release', `${sp}: the last step is ${last === 'shadow' ? 'the shadow step' : `${last}%`}; the candidate is never promoted to 100%`);
    }
    if (steps[0] === 'shadow' && !diff.enabled) {
      this.error(sp, 'release', `${sp}: the shadow step is judged on response differences; ${path.replace(/\.release$/, '')}.diff.enabled must stay true`);
    }
    const g = withDefaults('routes.*.release.gates', obj(r['gates']));
    const intervalMs: number = r['interval'];
    const maxStepDurationMs = r['maxStepDuration'] as number | undefined;
    if (maxStepDurationMs !== undefined && maxStepDurationMs < intervalMs) {
      const mp = childPath(path, 'maxStepDuration');
      this.error(mp, 'release', `${mp}: a step's deadline cannot come before its interval (${intervalMs / 1000}s)`);
    }
    if (candidate === undefined || steps.length === 0) return undefined;
    return {
      candidate,
      steps,
      shadowPercent: r['shadowPercent'],
      intervalMs,
      minRequests: r['minRequests'],
      gates: {
        maxErrorRate: g['maxErrorRate'],
        maxErrorRateIncrease: g['maxErrorRateIncrease'],
        maxLatencyRatio: g['maxLatencyRatio'],
        maxDiffRate: g['maxDiffRate'],
      },
      onFailure: r['onFailure'],
      controller: r['controller'],
      maxStepDurationMs,
      onTimeout: r['onTimeout'],
    };
  }

  private reference(name: string, path: string, upstreams: Record<string, UpstreamConfig>): void {
    if (upstreams[name]) return;
    if (this.positions.has(childPath('upstreams', name))) return; // defined, but invalid: reported there
    this.error(path, 'undefined-upstream', `${path}: upstream "${name}" is not defined${didYouMean(name, Object.keys(upstreams))}`);
  }

  private match(m: Raw, path: string): RouteMatchConfig | undefined {
    let prefix = typeof m['prefix'] === 'string' ? m['prefix'] : undefined;
    if (prefix !== undefined) {
      if (/(^|\/)\.\.?(\/|$)/.test(prefix) || prefix.includes('//') || prefix.includes('\\') || /%2f|%5c/i.test(prefix)) {
        this.error(
          childPath(path, 'prefix'),
          'prefix',
          `${path}.prefix: "${prefix}" can never match: request paths are normalized (no dot segments, repeated or encoded slashes)`,
        );
      }
      if (prefix.includes('?')) this.error(childPath(path, 'prefix'), 'prefix', `${path}.prefix: a path prefix cannot contain "?"`);
      if (prefix.length > 1) prefix = prefix.replace(/\/+$/, '') || '/';
    }
    const methods = m['methods'] !== undefined ? upper(list(m['methods'])) : undefined;
    for (const method of methods ?? []) {
      if (method === 'TRACE' || method === 'CONNECT') {
        this.warn(childPath(path, 'methods'), 'method', `${path}.methods: ${method} requests are always refused with 405`);
      }
    }
    let headers: Record<string, string> | undefined;
    if (m['headers'] !== undefined) {
      headers = {};
      for (const [k, v] of Object.entries(obj(m['headers']))) {
        if (typeof v !== 'string') continue;
        const lower = k.toLowerCase();
        if (lower === 'host') {
          this.warn(childPath(childPath(path, 'headers'), k), 'host-header', `${path}.headers: use match.host to match the Host header`);
        }
        headers[lower] = v;
      }
    }
    const host = typeof m['host'] === 'string' ? m['host'].toLowerCase() : undefined;
    const grpc = typeof m['grpc'] === 'boolean' ? m['grpc'] : undefined;
    return { prefix: prefix === '/' ? undefined : prefix, methods, headers, host, ...(grpc !== undefined ? { grpc } : {}) };
  }

  private diff(
    d: Raw,
    path: string,
    upstreams: Record<string, UpstreamConfig>,
    backends: BackendConfig[],
    shadow: ShadowConfig[],
    releaseShadows: boolean,
    prefix: string | undefined,
  ): DiffConfig {
    const baseline = d['baseline'] as string | undefined;
    if (baseline !== undefined) {
      const bp = childPath(path, 'baseline');
      this.reference(baseline, bp, upstreams);
      // A release's shadow step mirrors to its candidate, so the baseline is used there.
      if (shadow.length === 0 && !releaseShadows) {
        this.warn(bp, 'unused', `${bp}: this route has no shadow targets, so there is nothing to compare`);
      }
      if (backends.some((b) => b.upstream === baseline)) {
        this.warn(bp, 'baseline', `${bp}: "${baseline}" is also a backend; a baseline must be a second instance of the primary's version`);
      }
      if (shadow.some((s) => s.upstream === baseline)) {
        this.error(bp, 'baseline', `${bp}: "${baseline}" is a shadow target; the baseline must run the primary's version`);
      }
    }
    const ignorePaths = list(d['ignorePaths']).filter((p, i) => {
      if (typeof p !== 'string') return false;
      const pp = childPath(childPath(path, 'ignorePaths'), i);
      const never = ignoreEntryProblem(p);
      if (never !== undefined) {
        // "" validated before node paths existed: a warning keeps such configs loading.
        if (p === '') this.warn(pp, 'never', `${pp}: "" ${never}; it is ignored`);
        else this.error(pp, 'pointer', `${pp}: "${p}" ${never}`);
        return false;
      }
      if (p.startsWith('/') && /~(?![01])/.test(p)) {
        this.error(pp, 'pointer', `${pp}: "${p}" is not a JSON Pointer ("~" must be written ~0, "/" inside a key ~1)`);
        return false;
      }
      return true;
    }) as string[];
    return {
      enabled: d['enabled'],
      ignoreHeaders: strings(d['ignoreHeaders']).map((h) => h.toLowerCase()),
      ignorePaths,
      baseline,
      maxBodyBytes: d['maxBodyBytes'],
      endpoints: strings(d['endpoints']),
      tolerance: Object.entries(obj(d['tolerance'])).flatMap(([p, v]): NumberTolerance[] => {
        if (typeof v === 'number') return [{ path: p, mode: 'relative', value: v }];
        const o = obj(v);
        if (typeof o['absolute'] === 'number') return [{ path: p, mode: 'absolute', value: o['absolute'] }];
        if (typeof o['relative'] === 'number') return [{ path: p, mode: 'relative', value: o['relative'] }];
        return [];
      }),
      unordered: strings(d['unordered']),
      latency: { maxRatio: withDefaults('routes.*.diff.latency', obj(d['latency']))['maxRatio'] },
      ...(typeof d['protoDescriptors'] === 'string' ? { protoDescriptors: this.protoDescriptors(d['protoDescriptors'], childPath(path, 'protoDescriptors'), prefix) } : {}),
    };
  }

  /** The descriptor set must parse and declare the service (and method) the route's prefix names. */
  private protoDescriptors(file: string, path: string, prefix: string | undefined): string {
    const absolute = resolve(this.baseDir, file);
    const loaded = checkDescriptorFile(absolute);
    if ('problem' in loaded) {
      this.error(path, 'proto-descriptors', `${path}: "${file}" ${loaded.problem}`);
      return absolute;
    }
    const service = prefix === undefined ? undefined : serviceOfPrefix(prefix);
    if (service === undefined) return absolute;
    const declared = loaded.outline.services;
    const matchPath = path.replace(/\.diff\.protoDescriptors$/, '.match.prefix');
    if (!declared.includes(service)) {
      const known = declared.length > 0 ? `it declares ${declared.slice(0, 10).join(', ')}${declared.length > 10 ? ', ...' : ''}` : 'it declares no services';
      this.error(matchPath, 'proto-descriptors', `${matchPath}: service "${service}" is not in ${path} ("${file}"); ${known}${didYouMean(service, [...declared])}`);
      return absolute;
    }
    const method = prefix!.slice(service.length + 2).split('/')[0];
    if (method && !loaded.outline.methods.has(`/${service}/${method}`)) {
      this.error(matchPath, 'proto-descriptors', `${matchPath}: method "${service}/${method}" is not in ${path} ("${file}")`);
    }
    return absolute;
  }

  /** Warns about routes an earlier route fully covers (routing's own matcher decides): they can never match. */
  private coverage(routes: RouteConfig[], raw: unknown[]): void {
    const index = (route: RouteConfig) => raw.findIndex((r) => r && typeof r === 'object' && (r as Raw)['name'] === route.name);
    const matchers = routes.map((r) => compileMatcher(r.match));
    for (let j = 1; j < routes.length; j++) {
      const widest = widestRequests(routes[j]!.match);
      for (let i = 0; i < j; i++) {
        if (widest.every(matchers[i]!)) {
          const earlier = index(routes[i]!);
          const later = index(routes[j]!);
          const earlierLine = this.at(childPath('routes', earlier)).line;
          this.warn(
            childPath('routes', later),
            'unreachable',
            `routes[${later}]: route "${routes[j]!.name}" can never match: route "${routes[i]!.name}" (line ${earlierLine}) comes first and takes every request it would`,
          );
          break;
        }
      }
    }
  }

  private limits(written: Raw): LimitsConfig {
    const l = withDefaults('limits', written);
    const limits: LimitsConfig = {
      maxHeaderCount: l['maxHeaderCount'],
      maxHeaderBytes: l['maxHeaderBytes'],
      maxBodyBytes: l['maxBodyBytes'],
      shadowInflight: l['shadowInflight'],
      shadowBodyBytes: l['shadowBodyBytes'],
      shadowShedAbove: l['shadowShedAbove'],
      shadowInflightBytes: l['shadowInflightBytes'],
      compareQueue: l['compareQueue'],
      compareThreads: l['compareThreads'],
      maxConnections: l['maxConnections'],
      maxConnectionsPerClient: l['maxConnectionsPerClient'],
      recordBytes: l['recordBytes'],
      h2MaxConcurrentStreams: l['h2MaxConcurrentStreams'],
      h2MaxResetsPerSecond: l['h2MaxResetsPerSecond'],
      h2MaxSessionMemory: l['h2MaxSessionMemory'],
    };
    if (limits.maxHeaderBytes < 1024) {
      this.error('limits.maxHeaderBytes', 'range', 'limits.maxHeaderBytes: must be at least 1kb');
    }
    return limits;
  }

  private timeouts(written: Raw): TimeoutsConfig {
    const t = withDefaults('timeouts', written);
    return {
      headerMs: t['header'],
      idleMs: t['idle'],
      bodyMs: t['body'],
      websocketIdleMs: t['websocketIdle'],
      upstreamMs: t['upstream'],
      configSettleMs: t['configSettle'],
      shadowMs: t['shadow'],
      drainMs: t['drain'],
      recordMs: t['record'],
    };
  }
}

/**
 * A value written as an address, or as a mapping that holds one under `key`
 * beside its settings. Shaped, both forms are objects: an address is the
 * one with a port. The address is undefined when it is missing or the shape
 * pass refused it (and said why).
 */
function addressForm(value: unknown, key: string): { address: ListenAddress | undefined; settings: Raw } {
  if (isAddress(value)) return { address: value, settings: {} };
  const settings = obj(value);
  return { address: isAddress(settings[key]) ? settings[key] : undefined, settings };
}

function isAddress(value: unknown): value is ListenAddress {
  return typeof obj(value)['port'] === 'number';
}

function withHost(address: ListenAddress | undefined, defaultHost: string, fallback: ListenAddress): ListenAddress {
  if (!address) return fallback;
  return { host: address.host === '' ? defaultHost : address.host, port: address.port };
}

function upper(methods: readonly unknown[]): string[] {
  return [...new Set(strings(methods).map((m) => m.toUpperCase()))];
}

/** The valid strings of a list (invalid items were reported by the shape pass). */
/** A node path step: a tag (or "*"), then .classes, #id, :nth-of-type(n). */
const NODE_STEP = /^(?:\*|[A-Za-z][\w:-]*)(?:[.#][\w-]+|:nth-of-type\(\d+\))*$/;

/**
 * Why a diff.ignorePaths entry can never match anything, or undefined when
 * it can: a JSON Pointer ("/a/b"), or an HTML/XML node path
 * ("html > body > p.stock", "… > input@value").
 */
export function ignoreEntryProblem(entry: string): string | undefined {
  if (entry === '') return 'is empty: it names no path (ignore nothing, or set diff.enabled: false to compare nothing)';
  if (entry.startsWith('/')) return undefined;
  const at = entry.indexOf('@');
  const nodes = at < 0 ? entry : entry.slice(0, at);
  if (at >= 0 && !/^[\w:.-]+$/.test(entry.slice(at + 1))) return 'names no attribute after "@"';
  const steps = nodes.split('>').map((s) => s.trim());
  if (steps.some((s) => !NODE_STEP.test(s))) return 'is neither a JSON Pointer starting with "/" nor a node path such as "html > body > p.stock"';
  return undefined;
}

function strings(list: unknown): string[] {
  return Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : [];
}

/** A mapping's value, or {} when absent or invalid (reported already). */
function obj(value: unknown): Raw {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Raw) : {};
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/**
 * The most general requests a match block takes: its prefix as the path,
 * its host pattern as the host, its headers, one request per method (or a
 * method no config can name, when any goes), as a gRPC call and as a plain
 * one unless `grpc` picks one. Whatever route matcher takes all of them
 * takes every request the block matches.
 */
function widestRequests(match: RouteMatchConfig): RequestFacts[] {
  const base = { path: match.prefix ?? '/', host: match.host ?? '', headers: match.headers ?? {} };
  const kinds = match.grpc === undefined ? [false, true] : [match.grpc];
  return kinds.flatMap((grpc) => {
    const headers = grpc ? { ...base.headers, 'content-type': 'application/grpc' } : base.headers;
    return (match.methods ?? [ANY_METHOD]).map((method) => ({ ...base, headers, method }));
  });
}

/** Not an HTTP token, so no match block lists it. */
const ANY_METHOD = ' ';

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Raw)[key]);
  }
  return value;
}
