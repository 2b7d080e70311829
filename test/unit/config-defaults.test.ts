/**
 * The defaults the validator applies are the schema's declared defaults,
 * key by key: schema.ts is the one place a default is written.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { configSpec, type Spec } from '../../src/config/schema.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { parseAddress, parseDuration, parseSize } from '../../src/config/units.js';
import { validateConfigSource } from '../../src/config/validate.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/tls/${name}`, import.meta.url));

/** Every block present with only what it requires, so every default applies. */
const MINIMAL = `
upstreams:
  a: { url: "http://127.0.0.1:1", healthCheck: { path: /h }, outlierDetection: {}, retry: {} }
  s: http://127.0.0.1:2
  c: http://127.0.0.1:3
  t: { url: "https://127.0.0.1:4", tls: { serverName: example.com } }
routes:
  - name: r
    backends: [{ upstream: a }]
    shadow: [{ upstream: s }]
    diff: { latency: {} }
    release: { candidate: c, gates: {} }
accessLog: { path: stdout }
tls: { cert: "${fixture('example.pem')}", key: "${fixture('example.key')}" }
egress: { dark: "127.0.0.1:0" }
dependencies:
  pay: { url: "http://127.0.0.1:5" }
  mail: { url: "https://127.0.0.1:6", tls: { serverName: example.com } }
`;

type Read = (config: GatewayConfig) => unknown;
const route = (c: GatewayConfig) => c.routes[0]!;
const upstream = (c: GatewayConfig) => c.upstreams['a']!;
const ms = (key: string) => `${key}Ms`;

/** Schema path of each default → where the validated config holds it. */
const APPLIED: Record<string, Read> = {
  version: (c) => c.version,
  listen: (c) => c.listen,
  // Off is held as absence: the plain address form and `h2c: false` compile alike.
  'listen.h2c': (c) => c.listen.h2c ?? false,
  admin: (c) => ({ host: c.admin.host, port: c.admin.port }),
  stateDir: (c) => c.stateDir,
  'paths.escapedSlashes': (c) => c.paths.escapedSlashes,
  'accessLog.format': (c) => c.accessLog!.format,
  'tls.minVersion': (c) => c.tls!.minVersion,
  'dependencies.*.wait': (c) => c.dependencies!['pay']!.waitMs,
  'dependencies.*.tls.insecureSkipVerify': (c) => c.dependencies!['mail']!.tls!.insecureSkipVerify,
  'upstreams.*.connectTimeout': (c) => upstream(c).connectTimeoutMs,
  'upstreams.*.maxSockets': (c) => upstream(c).maxSockets,
  // http1 is held as absence, as the compiled upstream tells the two apart by it.
  'upstreams.*.protocol': (c) => upstream(c).protocol ?? 'http1',
  'upstreams.*.endpoints.*.weight': (c) => upstream(c).endpoints[0]!.weight,
  'upstreams.*.healthCheck.interval': (c) => upstream(c).healthCheck!.intervalMs,
  'upstreams.*.healthCheck.timeout': (c) => upstream(c).healthCheck!.timeoutMs,
  'upstreams.*.healthCheck.healthyThreshold': (c) => upstream(c).healthCheck!.healthyThreshold,
  'upstreams.*.healthCheck.unhealthyThreshold': (c) => upstream(c).healthCheck!.unhealthyThreshold,
  'upstreams.*.outlierDetection.consecutiveFailures': (c) => upstream(c).outlierDetection.consecutiveFailures,
  'upstreams.*.outlierDetection.baseEjectionTime': (c) => upstream(c).outlierDetection.baseEjectionMs,
  'upstreams.*.outlierDetection.maxEjectionPercent': (c) => upstream(c).outlierDetection.maxEjectionPercent,
  'upstreams.*.retry.attempts': (c) => upstream(c).retry.attempts,
  'upstreams.*.retry.on': (c) => upstream(c).retry.on,
  'upstreams.*.retry.budgetPercent': (c) => upstream(c).retry.budgetPercent,
  'upstreams.*.tls.insecureSkipVerify': (c) => c.upstreams['t']!.tls!.insecureSkipVerify,
  'routes.*.backends.*.weight': (c) => route(c).backends[0]!.weight,
  'routes.*.shadow.*.percent': (c) => route(c).shadow[0]!.percent,
  'routes.*.shadow.*.methods': (c) => route(c).shadow[0]!.methods,
  'routes.*.shadow.*.credentials': (c) => route(c).shadow[0]!.credentials,
  'routes.*.shadow.*.streaming': (c) => route(c).shadow[0]!.streaming,
  'routes.*.diff.enabled': (c) => route(c).diff.enabled,
  'routes.*.diff.maxBodyBytes': (c) => route(c).diff.maxBodyBytes,
  'routes.*.diff.latency.maxRatio': (c) => route(c).diff.latency.maxRatio,
  'routes.*.release.steps': (c) => route(c).release!.steps,
  'routes.*.release.shadowPercent': (c) => route(c).release!.shadowPercent,
  'routes.*.release.interval': (c) => route(c).release!.intervalMs,
  'routes.*.release.minRequests': (c) => route(c).release!.minRequests,
  'routes.*.release.onFailure': (c) => route(c).release!.onFailure,
  'routes.*.release.onTimeout': (c) => route(c).release!.onTimeout,
  'routes.*.release.controller': (c) => route(c).release!.controller,
  ...Object.fromEntries(
    ['maxErrorRate', 'maxErrorRateIncrease', 'maxLatencyRatio', 'maxDiffRate'].map((k) => [`routes.*.release.gates.${k}`, (c: GatewayConfig) => (route(c).release!.gates as unknown as Record<string, unknown>)[k]]),
  ),
  ...Object.fromEntries(
    ['maxHeaderCount', 'maxHeaderBytes', 'maxBodyBytes', 'shadowInflight', 'shadowBodyBytes', 'shadowShedAbove', 'shadowInflightBytes', 'compareQueue', 'recordBytes', 'h2MaxConcurrentStreams', 'h2MaxResetsPerSecond', 'h2MaxSessionMemory', 'compareThreads'].map((k) => [
      `limits.${k}`,
      (c: GatewayConfig) => (c.limits as unknown as Record<string, unknown>)[k],
    ]),
  ),
  ...Object.fromEntries(
    ['header', 'idle', 'body', 'websocketIdle', 'configSettle', 'upstream', 'shadow', 'drain', 'record'].map((k) => [
      `timeouts.${k}`,
      (c: GatewayConfig) => (c.timeouts as unknown as Record<string, unknown>)[ms(k)],
    ]),
  ),
};

/** Every declared default in the schema, by path, as a file would give it. */
function declaredDefaults(spec: Spec, path: string, out: Map<string, unknown>): Map<string, unknown> {
  if (spec.default !== undefined && path !== '') out.set(path, read(spec));
  const at = (step: string) => (path === '' ? step : `${path}.${step}`);
  switch (spec.type) {
    case 'object':
      for (const [key, property] of Object.entries(spec.properties)) declaredDefaults(property, at(key), out);
      break;
    case 'map':
      declaredDefaults(spec.values, at('*'), out);
      break;
    case 'array':
      declaredDefaults(spec.items, at('*'), out);
      break;
    case 'union':
      if (spec.map) declaredDefaults({ ...spec.map, default: undefined } as Spec, path, out);
      break;
  }
  return out;
}

function read(spec: Spec): unknown {
  const value = spec.default;
  const kind = spec.type === 'union' ? spec.scalar! : spec;
  if (kind.type === 'duration') return ok(parseDuration(value));
  if (kind.type === 'size') return ok(parseSize(value));
  if (kind.type === 'address') return ok(parseAddress(value, ''));
  return value;
}

function ok<T>(parsed: { ok: true; value: T } | { ok: false; error: string }): T {
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

describe('config defaults', () => {
  const declared = declaredDefaults(configSpec, '', new Map());
  const result = validateConfigSource({ file: fixture('gateway.yaml'), text: MINIMAL }, {});

  test('the minimal config with every block is valid', () => {
    assert.ok(result.config, result.diagnostics.map((d) => d.message).join('\n'));
  });

  test('every declared default is checked here, and nothing else', () => {
    assert.deepEqual([...declared.keys()].sort(), Object.keys(APPLIED).sort());
  });

  for (const [path, expected] of declaredDefaults(configSpec, '', new Map())) {
    test(`${path}: the validator applies the schema's default`, () => {
      const read = APPLIED[path];
      assert.ok(read, `${path} has a default in schema.ts: add where the config holds it to APPLIED`);
      assert.deepEqual(read(result.config!), expected);
    });
  }
});
