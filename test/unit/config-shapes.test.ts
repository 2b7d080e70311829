/**
 * Wrong shapes anywhere in a config are reported, never a crash: the test
 * walks the schema (schema.ts) over a config that fills every part of it,
 * and at each place puts a value of each wrong kind, or the object there
 * without one of its required keys. Each result has positioned errors and
 * no config, or no errors and a config; a value the JSON Schema refuses is
 * never accepted.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import AjvModule from 'ajv';
import { stringify } from 'yaml';
import { generateJsonSchema } from '../../src/config/json-schema.js';
import { configSpec, type Spec } from '../../src/config/schema.js';
import { validateConfigSource } from '../../src/config/validate.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));

/**
 * Every object, list, map and union form of the schema, with the values it
 * needs to be valid; the other keys are tried where they are absent.
 */
const BASE = {
  listen: { address: '127.0.0.1:0' },
  admin: { listen: '127.0.0.1:0', allowedHosts: ['gateway.example.com'] },
  upstreams: {
    a: 'http://127.0.0.1:1',
    b: {
      endpoints: ['http://127.0.0.1:2', { url: 'http://127.0.0.1:3' }],
      healthCheck: { path: '/health' },
      outlierDetection: {},
      retry: { on: ['connect'] },
    },
    c: { url: 'https://127.0.0.1:4', tls: {} },
    d: 'http://127.0.0.1:5',
    e: 'http://127.0.0.1:6',
  },
  routes: [
    {
      name: 'shop',
      match: { prefix: '/shop', methods: ['GET'], headers: { 'x-tenant': 'acme' }, host: 'example.com' },
      paths: {},
      backends: [{ upstream: 'a' }],
      sticky: { header: 'x-user-id' },
      shadow: [{ upstream: 'b', methods: ['GET'], headers: { set: { 'x-profile': 'dark' }, remove: ['x-trace'] } }],
      diff: {
        ignoreHeaders: ['etag'],
        ignorePaths: ['/meta/id'],
        endpoints: ['/shop/{id}'],
        tolerance: { '/price': 0.01, '/total': { absolute: 1 } },
        unordered: ['/items'],
        latency: {},
        baseline: 'e',
      },
      release: { candidate: 'd', steps: ['shadow', 100], gates: {} },
    },
  ],
  trustedProxies: ['10.0.0.0/8'],
  limits: {},
  timeouts: {},
  paths: {},
  accessLog: { path: 'stdout', fields: ['time'], headers: ['user-agent'] },
  tls: { certificates: [{ cert: fixture('tls/example.pem'), key: fixture('tls/example.key') }] },
  egress: { dark: '127.0.0.1:0' },
  dependencies: { pay: { url: 'https://127.0.0.1:7', tls: {}, passthrough: ['GET'], ignoreBody: ['/id'] } },
};

/** Wrong for most places, right for some: either way the validator must answer. */
const WRONG: readonly unknown[] = [{}, [], null, true, 1, -1, 'x', [1], { x: 1 }];

type Step = string | number;

/** A place in the config a value can be put. */
interface Site {
  readonly at: readonly Step[];
  /** Values to put there. */
  readonly values: readonly unknown[];
}

interface Walk {
  readonly sites: Site[];
  /** Schema paths of the objects, lists, maps and union forms BASE holds, and of those it leaves out. */
  readonly held: Set<string>;
  readonly missing: Set<string>;
}

const isMapping = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * Every place of `spec` in `value` (undefined: absent), and the values to
 * try there. Schema paths name keys, "*" for any item or map value, and a
 * union's mapping or list form as "(map)" or "(seq)".
 */
function walk(spec: Spec, value: unknown, at: Step[], path: string, out: Walk): void {
  if (value === undefined || spec.type === 'union') for (const inner of containers(spec, path)) out.missing.add(inner);
  if (value === undefined) return void out.sites.push({ at, values: WRONG });
  if (spec.type === 'union') {
    const form = Array.isArray(value) ? 'seq' : isMapping(value) ? 'map' : undefined;
    const branch = form && spec[form];
    if (branch) walk(branch, value, at, `${path} (${form})`, out);
    else out.sites.push({ at, values: WRONG });
    return;
  }
  out.sites.push({ at, values: [...WRONG, ...withoutRequired(spec, value)] });
  if (spec.type === 'object') {
    out.held.add(path);
    for (const [key, property] of Object.entries(spec.properties)) walk(property, (value as Record<string, unknown>)[key], [...at, key], `${path}.${key}`, out);
  } else if (spec.type === 'map' || spec.type === 'array') {
    out.held.add(path);
    const inner = spec.type === 'map' ? spec.values : spec.items;
    const items = Object.entries(value as object);
    if (items.length === 0) for (const c of containers(inner, `${path}.*`)) out.missing.add(c);
    for (const [key, item] of items) walk(inner, item, [...at, Array.isArray(value) ? Number(key) : key], `${path}.*`, out);
  }
}

/** The schema paths of `spec` that hold more values: an object, list or map, or a union's mapping or list form. */
function containers(spec: Spec, path: string): string[] {
  if (spec.type === 'union') return (['map', 'seq'] as const).filter((form) => spec[form]).map((form) => `${path} (${form})`);
  return spec.type === 'object' || spec.type === 'map' || spec.type === 'array' ? [path] : [];
}

/** The object without each of the keys it must have (or must have one of). */
function withoutRequired(spec: Spec, value: unknown): unknown[] {
  if (spec.type !== 'object' || !isMapping(value)) return [];
  const keys = [...(spec.required ?? []), ...(spec.exactlyOne ?? [])].filter((k) => k in value);
  return keys.map((k) => Object.fromEntries(Object.entries(value).filter(([key]) => key !== k)));
}

/**
 * Loading the certificates is most of a run's time, so BASE keeps its tls
 * block only where the TLS check reads: the block itself, the addresses it
 * must not clash with, and the route hosts its certificates must cover.
 */
const readByTls = (at: readonly Step[]) => ['tls', 'listen', 'admin'].includes(String(at[0])) || (at[0] === 'routes' && at[2] === 'match');

/** BASE with `value` put at `at`. */
function put(at: readonly Step[], value: unknown): unknown {
  if (at.length === 0) return value;
  const { tls, ...rest } = structuredClone(BASE);
  const config = (readByTls(at) ? { ...rest, tls } : rest) as Record<Step, unknown>;
  let parent = config;
  for (const step of at.slice(0, -1)) parent = parent[step] as Record<Step, unknown>;
  parent[at.at(-1)!] = value;
  return config;
}

const label = (at: readonly Step[]) => at.map((s) => (typeof s === 'number' ? `[${s}]` : `.${s}`)).join('').slice(1) || 'config';

/** Stands for the value tried; JSON, one line, is also YAML. */
const MARK = 'value-under-test';

const Ajv = (AjvModule as unknown as { default: typeof AjvModule }).default ?? AjvModule;

describe('wrong shapes', () => {
  const walked: Walk = { sites: [], held: new Set(), missing: new Set() };
  walk(configSpec, BASE, [], 'config', walked);
  const schema = new (Ajv as any)({ allErrors: true, strict: false }).compile(generateJsonSchema());

  test('the base config is valid', () => {
    const result = validateConfigSource({ file: 'base.yaml', text: stringify(BASE) }, {});
    assert.ok(result.config, result.diagnostics.map((d) => `${d.path}: ${d.message}`).join('\n'));
  });

  test('the base config reaches every object, list, map and union form of the schema', () => {
    assert.deepEqual([...walked.missing].filter((path) => !walked.held.has(path)), [], 'add these to BASE');
  });

  for (const site of walked.sites) {
    test(`${label(site.at)}: reported, never a crash`, () => {
      const template = stringify(put(site.at, MARK));
      const problems: string[] = [];
      for (const value of site.values) {
        const shown = `${label(site.at)}: ${JSON.stringify(value)}`;
        let result: ReturnType<typeof validateConfigSource>;
        try {
          result = validateConfigSource({ file: 'shapes.yaml', text: template.replace(MARK, JSON.stringify(value)) }, {});
        } catch (err) {
          problems.push(`${shown}: threw ${(err as Error).stack?.split('\n').slice(0, 3).join(' ')}`);
          continue;
        }
        const errors = result.diagnostics.filter((d) => d.severity === 'error');
        const unplaced = result.diagnostics.filter((d) => !(d.line >= 1 && d.column >= 1));
        if (unplaced.length > 0) problems.push(`${shown}: unplaced ${JSON.stringify(unplaced)}`);
        if ((errors.length > 0) === (result.config !== undefined)) problems.push(`${shown}: ${errors.length} errors, config ${result.config ? 'given' : 'withheld'}`);
        if (errors.length === 0 && !schema(put(site.at, value))) problems.push(`${shown}: accepted, but the JSON Schema refuses it: ${JSON.stringify(schema.errors?.[0])}`);
      }
      assert.deepEqual(problems, []);
    });
  }
});
