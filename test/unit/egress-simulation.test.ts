/**
 * Hoverfly simulations (schema v5): a file written by hand per Hoverfly's
 * docs loads and answers; the matchers behave as Hoverfly's; everything not
 * supported, and hostile input, is an error located at its line:col.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { CompiledDependency } from '../../src/config/compile.js';
import { validateConfigFile } from '../../src/config/validate.js';
import { recordingsSimulation } from '../../src/egress/export.js';
import { globMatch, loadSimulation, matchSimulation, parseSimulation, simulationIndexed, type SimulatedRequest } from '../../src/egress/simulation.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/gateway.js';

/** In the shape of Hoverfly's documentation examples. */
const HAND_WRITTEN = `{
  "data": {
    "pairs": [
      {
        "request": {
          "path": [{ "matcher": "exact", "value": "/v1/charges" }],
          "method": [{ "matcher": "exact", "value": "POST" }],
          "destination": [{ "matcher": "glob", "value": "*.payments.example" }],
          "query": { "expand": [{ "matcher": "exact", "value": "customer;source" }] },
          "body": [{ "matcher": "jsonPartial", "value": "{\\"currency\\": \\"EUR\\"}" }]
        },
        "response": {
          "status": 201,
          "body": "{\\"id\\": \\"ch_sim\\"}",
          "encodedBody": false,
          "headers": { "Content-Type": ["application/json"] },
          "templated": false
        }
      },
      {
        "request": {
          "path": [{ "matcher": "regex", "value": "(?i)^/V1/CHARGES/ch_[0-9]+$" }],
          "method": [{ "matcher": "exact", "value": "GET" }]
        },
        "response": { "status": 200, "body": "b2s=", "encodedBody": true, "headers": {}, "templated": false }
      },
      {
        "request": {
          "path": [{ "matcher": "glob", "value": "/v1/*" }],
          "body": [{ "matcher": "json", "value": "{\\"a\\": [1, 2]}" }]
        },
        "response": { "status": 202, "body": "loose", "encodedBody": false, "headers": {}, "templated": false }
      },
      {
        "request": {
          "path": [{ "matcher": "exact", "value": "/v1/refunds" }],
          "body": [{ "matcher": "json", "value": "{\\"a\\": [1, 2]}" }]
        },
        "response": { "status": 203, "body": "strong", "encodedBody": false, "headers": {}, "templated": false }
      }
    ],
    "globalActions": { "delays": [], "delaysLogNormal": [] }
  },
  "meta": { "schemaVersion": "v5.2", "hoverflyVersion": "v1.10.0", "timeExported": "2024-01-01T00:00:00Z" }
}`;

const req = (over: Partial<SimulatedRequest>): SimulatedRequest => ({
  method: 'POST',
  path: '/v1/charges',
  destination: 'api.payments.example',
  scheme: 'https',
  query: new Map(),
  headers: new Map(),
  body: '',
  ...over,
});

describe('Hoverfly simulations', () => {
  const loaded = parseSimulation({ file: 'payments.json', text: HAND_WRITTEN }, '/payments.json');
  const pairs = loaded.simulation!.pairs;

  test('a hand-written v5 file loads', () => {
    assert.deepEqual(loaded.diagnostics, []);
    assert.equal(pairs.length, 4);
  });

  test('exact, glob, query (joined with ";") and jsonPartial match together', () => {
    const hit = matchSimulation(pairs, req({ query: new Map([['expand', ['customer', 'source']]]), body: '{"amount": 10, "currency": "EUR"}' }));
    assert.equal(hit?.response.status, 201);
    assert.equal(matchSimulation(pairs, req({ query: new Map([['expand', ['customer']]]), body: '{"currency": "EUR"}' }))?.response.status, undefined);
    assert.equal(matchSimulation(pairs, req({ destination: 'evil.example', query: new Map([['expand', ['customer', 'source']]]), body: '{"currency":"EUR"}' })), undefined);
  });

  test('regex with Go flags, and base64 bodies', () => {
    const hit = matchSimulation(pairs, req({ method: 'GET', path: '/v1/charges/ch_42' }));
    assert.equal(hit?.response.status, 200);
    assert.equal(Buffer.from(hit!.response.body, 'base64').toString(), 'ok');
  });

  test('json compares structure; the strongest match wins', () => {
    assert.equal(matchSimulation(pairs, req({ path: '/v1/other', body: '{ "a" : [1,2] }' }))?.response.status, 202);
    assert.equal(matchSimulation(pairs, req({ path: '/v1/refunds', body: '{"a":[1,2]}' }))?.response.status, 203);
    assert.equal(matchSimulation(pairs, req({ path: '/v1/other', body: '{"a":[2,1]}' })), undefined);
  });

  test('pairs are tried in file order whatever their path matchers: the first of equals wins', () => {
    const pair = (path: { matcher: string; value: string }[], status: number, method?: string) => ({
      request: { path, ...(method ? { method: [{ matcher: 'exact', value: method }] } : {}) },
      response: { status },
    });
    const text = JSON.stringify({
      data: {
        pairs: [
          pair([{ matcher: 'glob', value: '/orders/*' }], 201),
          pair([{ matcher: 'exact', value: '/orders/1' }, { matcher: 'glob', value: '*1' }], 202),
          pair([{ matcher: 'exact', value: '/orders/1' }], 203, 'GET'),
          pair([{ matcher: 'exact', value: '/orders/2' }], 204),
          pair([{ matcher: 'regex', value: '^/orders/[0-9]+$' }, { matcher: 'glob', value: '/orders/*' }], 205),
          pair([], 206),
        ],
      },
      meta: { schemaVersion: 'v5' },
    });
    const sim = parseSimulation({ file: 'sim.json', text }, '/sim.json').simulation!.pairs;
    const status = (path: string, method = 'GET') => matchSimulation(sim, req({ path, method }))?.response.status;
    // exact + glob (3) beats glob (1) and regex + glob (2); exact + method (4) beats both.
    assert.equal(status('/orders/1', 'POST'), 202);
    assert.equal(status('/orders/1'), 203);
    // Equal scores: the earlier pair.
    assert.equal(status('/orders/2'), 204);
    assert.equal(status('/orders/3'), 205);
    assert.equal(status('/elsewhere'), 206);
    // The exact matcher decides the path alone: its other matchers must still match.
    const strict = parseSimulation({ file: 'sim.json', text: text.replace('"*1"', '"*9"') }, '/sim.json').simulation!.pairs;
    assert.equal(matchSimulation(strict, req({ path: '/orders/1', method: 'POST' }))?.response.status, 205);
  });

  test('a recorded endpoint with many bodies: the pair of the call\'s body, by exact text or equal JSON, in file order', () => {
    const pair = (body: { matcher: string; value: string }[], status: number) => ({ request: { path: [{ matcher: 'exact', value: '/v1/charges' }], body }, response: { status } });
    const pairs = Array.from({ length: 3000 }, (_, i) => pair([{ matcher: 'json', value: JSON.stringify({ amount: i, currency: 'eur' }) }], 200 + (i % 100)));
    pairs.unshift(pair([{ matcher: 'glob', value: '*"amount":7,*' }], 599));
    pairs.push(pair([{ matcher: 'exact', value: 'plain text' }], 598), pair([{ matcher: 'jsonPartial', value: '{"currency":"usd"}' }], 597));
    const text = JSON.stringify({ data: { pairs }, meta: { schemaVersion: 'v5' } });
    const sim = parseSimulation({ file: 'sim.json', text }, '/sim.json').simulation!.pairs;
    const status = (body: string) => matchSimulation(sim, req({ method: 'POST', path: '/v1/charges', body }))?.response.status;
    // Keys in another order and other spacing: equal JSON.
    assert.equal(status('{ "currency": "eur", "amount": 2999 }'), 299);
    // The glob pair comes first and scores as the json one (1 each): it wins for its body only.
    assert.equal(status('{"amount":7,"currency":"eur"}'), 599);
    assert.equal(status('{"amount":8,"currency":"eur"}'), 208);
    assert.equal(status('plain text'), 598);
    assert.equal(status('{"amount":1,"currency":"usd"}'), 597);
    assert.equal(status('{"amount":1,"currency":"gbp"}'), undefined);
    // A body nested past any matcher value is no JSON match, and no trouble.
    assert.equal(status('['.repeat(100_000) + ']'.repeat(100_000)), undefined);
  });

  /** 20,000 pairs of one endpoint with json bodies, as parsed from a file (about 100 ms to index here). */
  const manyJsonPairs = () => {
    const pairs = Array.from({ length: 20_000 }, (_, i) => ({
      request: { path: [{ matcher: 'exact', value: '/v1/charges' }], body: [{ matcher: 'json', value: JSON.stringify({ amount: i, lines: [{ sku: `s${i}`, n: 1 }] }) }] },
      response: { status: 200 + (i % 100) },
    }));
    return parseSimulation({ file: 'big.json', text: JSON.stringify({ data: { pairs }, meta: { schemaVersion: 'v5' } }) }, '/big.json').simulation!.pairs;
  };

  test('a large simulation is indexed in slices: the event loop turns between them, and calls match as without them', async () => {
    const sim = manyJsonPairs();
    let turns = 0;
    let longest = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
      turns++;
    }, 1);
    const started = performance.now();
    try {
      await simulationIndexed(sim);
    } finally {
      clearInterval(ticker);
    }
    const took = performance.now() - started;
    // A timer set for every millisecond ran through the build: it did not hold the loop for its whole length.
    assert.ok(turns >= 3, `${turns} timer turns during a ${took.toFixed(0)} ms build`);
    assert.ok(longest < took, `the loop waited ${longest.toFixed(1)} ms at most, the build took ${took.toFixed(1)} ms`);
    const status = (body: string) => matchSimulation(sim, req({ method: 'POST', path: '/v1/charges', body }))?.response.status;
    assert.equal(status('{"lines":[{"n":1,"sku":"s12345"}],"amount":12345}'), 245);
    assert.equal(status('{"amount":12345}'), undefined);
    // Indexed once: later waits settle at once, and share the build.
    assert.equal(simulationIndexed(sim), simulationIndexed(sim));
  });

  test('a call that cannot wait finishes a build in progress, and the build\'s waiters settle', async () => {
    const sim = manyJsonPairs();
    const indexed = simulationIndexed(sim);
    assert.equal(matchSimulation(sim, req({ method: 'POST', path: '/v1/charges', body: '{"amount":19999,"lines":[{"sku":"s19999","n":1}]}' }))?.response.status, 299);
    await indexed;
  });

  test('glob is go-glob: only * is special', () => {
    assert.ok(globMatch('*.example', 'a.b.example'));
    assert.ok(globMatch('/v1/*/x', '/v1/a/b/x'));
    assert.ok(!globMatch('/v1/?', '/v1/a'));
    assert.ok(globMatch('a*b*c', 'abc'));
    assert.ok(!globMatch('a*b*c', 'acb'));
  });

  const problems = (text: string) => parseSimulation({ file: 'sim.json', text }, '/sim.json').diagnostics;

  test('unsupported matchers, templating, state and chaining are errors at their line:col', () => {
    const text = `{
  "data": { "pairs": [ {
    "request": {
      "path": [{ "matcher": "xpath", "value": "/a" }],
      "requiresState": { "x": "1" },
      "body": [{ "matcher": "exact", "value": "x", "doMatch": { "matcher": "exact", "value": "y" } }]
    },
    "response": { "status": 200, "body": "{{ Request.Path }}", "templated": true }
  } ] },
  "meta": { "schemaVersion": "v5" }
}`;
    const found = problems(text);
    const at = (needle: string) => found.find((d) => d.message.includes(needle));
    assert.deepEqual([at('"xpath" is not supported')?.line, at('"xpath" is not supported')?.column], [4, 29]);
    assert.equal(at('state is not supported')?.line, 5);
    assert.equal(at('chaining')?.line, 6);
    assert.equal(at('templating')?.line, 8);
    assert.ok(found.every((d) => d.file === 'sim.json' && d.severity === 'error'));
  });

  test('hostile files get clear errors', () => {
    assert.match(problems('{"data": {"pairs": [}')[0]!.message, /.+/);
    assert.match(problems('{"data":{"pairs":[]},"meta":{"schemaVersion":"v2"}}')[0]!.message, /only schema v5/);
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    assert.ok(problems(deep).length > 0);
    const redos = `{"data":{"pairs":[{"request":{"path":[{"matcher":"regex","value":"^(a+)+$"}]},"response":{"status":200}}]},"meta":{"schemaVersion":"v5"}}`;
    assert.match(problems(redos)[0]!.message, /catastrophic backtracking/);
    const lookaround = `{"data":{"pairs":[{"request":{"path":[{"matcher":"regex","value":"(?=a)"}]},"response":{"status":200}}]},"meta":{"schemaVersion":"v5"}}`;
    assert.match(problems(lookaround)[0]!.message, /look-around/);
    const badJson = `{"data":{"pairs":[{"request":{"body":[{"matcher":"json","value":"{nope"}]},"response":{"status":200}}]},"meta":{"schemaVersion":"v5"}}`;
    assert.match(problems(badJson)[0]!.message, /not valid JSON/);
    const numbered = `{"data":{"pairs":[{"request":{"path":[{"matcher":5,"value":"/"}]},"response":{"status":200}}]},"meta":{"schemaVersion":"v5"}}`;
    assert.match(problems(numbered)[0]!.message, /path\[0\]\.matcher: must be a name: one of exact/);
    assert.match(problems(numbered.replace('"matcher":5,', ''))[0]!.message, /path\[0\]\.matcher: missing/);
  });

  const withResponse = (response: unknown) =>
    JSON.stringify({ data: { pairs: [{ request: {}, response: { status: 200, ...(response as object) } }] }, meta: { schemaVersion: 'v5' } });

  test('an expression that backtracks without bound does not stall matching', () => {
    const text = `{"data":{"pairs":[{"request":{"path":[{"matcher":"regex","value":"^/(a|a?)+$"}]},"response":{"status":200}}]},"meta":{"schemaVersion":"v5"}}`;
    const sim = parseSimulation({ file: 'sim.json', text }, '/sim.json').simulation!.pairs;
    const started = performance.now();
    assert.equal(matchSimulation(sim, req({ path: `/${'a'.repeat(28)}!` })), undefined);
    assert.equal(matchSimulation(sim, req({ path: `/${'a'.repeat(28)}` }))?.response.status, 200);
    assert.ok(performance.now() - started < 1000, `${performance.now() - started} ms`);
  });

  test('a null field asks for nothing', () => {
    const text = `{"data":{"pairs":[{
      "request":{"path":[{"matcher":"exact","value":"/a","config":null,"doMatch":null}],"method":null,"query":null,"headers":null,"requiresState":null},
      "response":{"status":200,"body":"ok","fixedDelay":null,"transitionsState":null,"removesState":null}}]},"meta":{"schemaVersion":"v5"}}`;
    const loaded = parseSimulation({ file: 'sim.json', text }, '/sim.json');
    assert.deepEqual(loaded.diagnostics, []);
    assert.equal(matchSimulation(loaded.simulation!.pairs, req({ path: '/a', query: new Map([['q', ['1']]]) }))?.response.body, 'ok');
    assert.match(problems(text.replace('"doMatch":null', '"doMatch":{"matcher":"exact","value":"x"}'))[0]!.message, /chaining/);
  });

  test('a response that could not be sent is refused at load', () => {
    for (const value of ['a\r\nx-injected: 1', 'nul\u0000', 'euro \u20ac']) {
      assert.match(problems(withResponse({ headers: { 'x-a': ['fine', value] } }))[0]!.message, /headers\.x-a\[1\]: not a valid header value/);
    }
    assert.deepEqual(problems(withResponse({ headers: { 'x-a': ['caf\u00e9'] } })), []);
    assert.match(problems(withResponse({ status: 101 }))[0]!.message, /final HTTP status/);
  });

  test('an encoded body must be whole, padded base64', () => {
    for (const body of ['a', 'b2s', 'b2s=x', 'b2s==']) {
      assert.match(problems(withResponse({ body, encodedBody: true }))[0]!.message, /not base64/, body);
    }
    for (const body of ['', 'b2s=', 'b2vr', 'b2sh\nb2s=']) assert.deepEqual(problems(withResponse({ body, encodedBody: true })), [], body);
  });

  test('a deeply nested JSON body is searched within bounds; a deeply nested matcher value is refused', () => {
    const partial = `{"data":{"pairs":[{"request":{"body":[{"matcher":"jsonPartial","value":"[{\\"a\\":1}]"}]},"response":{"status":200}}]},"meta":{"schemaVersion":"v5"}}`;
    const sim = parseSimulation({ file: 'sim.json', text: partial }, '/sim.json').simulation!.pairs;
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    assert.equal(matchSimulation(sim, req({ body: deep })), undefined);
    assert.equal(matchSimulation(sim, req({ body: '['.repeat(100) + '{"a":1}' + ']'.repeat(100) }))?.response.status, 200);
    const nested = JSON.stringify('['.repeat(65) + ']'.repeat(65));
    const refused = `{"data":{"pairs":[{"request":{"body":[{"matcher":"json","value":${nested}}]},"response":{"status":200}}]},"meta":{"schemaVersion":"v5"}}`;
    assert.match(problems(refused)[0]!.message, /nested deeper than 64 levels/);
  });

  test('a header or parameter named __proto__ is matched and kept like any other, also through export', () => {
    const text = `{"data":{"pairs":[{"request":{"headers":{"__proto__":[{"matcher":"exact","value":"y"}]}},"response":{"status":200,"headers":{"__proto__":["v"]}}}]},"meta":{"schemaVersion":"v5"}}`;
    const sim = parseSimulation({ file: 'sim.json', text }, '/sim.json').simulation!.pairs;
    assert.equal(matchSimulation(sim, req({})), undefined);
    assert.deepEqual(Object.entries(matchSimulation(sim, req({ headers: new Map([['__proto__', ['y']]]) }))!.response.headers), [['__proto__', ['v']]]);
    const dependency = { upstream: { target: new URL('http://api.example') } } as CompiledDependency;
    const call = { dependency: 'api', method: 'GET', path: '/', query: '__proto__=1', targetPath: '/', headers: {}, body: Buffer.alloc(0), time: 0 };
    const exported = JSON.stringify(recordingsSimulation(dependency, [{ ...call, response: { status: 200, headers: {}, body: Buffer.from('ok') } }]).simulation);
    const back = parseSimulation({ file: 'export.json', text: exported }, '/export.json').simulation!.pairs;
    const at = (query: [string, string[]][]) => req({ method: 'GET', path: '/', destination: 'api.example', scheme: 'http', query: new Map(query) });
    assert.equal(matchSimulation(back, at([['__proto__', ['1']]]))?.response.body, 'ok');
    assert.equal(matchSimulation(back, at([])), undefined);
  });

  test('a recorded export past the config size loads; the limits name the simulation and the syntax', () => {
    const tmp = tempDir();
    try {
      // About 6 MB of recorded pairs, as record export writes them (pretty-printed JSON).
      const pair = (i: number) => ({
        request: { method: [{ matcher: 'exact', value: 'POST' }], path: [{ matcher: 'exact', value: `/v1/charges/${i}` }], body: [{ matcher: 'json', value: JSON.stringify({ amount: i, note: 'x'.repeat(500) }) }] },
        response: { status: 200, body: JSON.stringify({ id: `ch_${i}`, pad: 'y'.repeat(400) }), encodedBody: false, headers: { 'content-type': ['application/json'] }, templated: false },
      });
      const text = JSON.stringify({ data: { pairs: Array.from({ length: 4500 }, (_, i) => pair(i)) }, meta: { schemaVersion: 'v5.2' } }, null, 2);
      assert.ok(text.length > 5 * 1024 * 1024, `${text.length} bytes`);
      const file = join(tmp.dir, 'recorded.json');
      writeFileSync(file, text);
      const loaded = loadSimulation(file, 'recorded.json');
      assert.deepEqual(loaded.diagnostics, []);
      assert.equal(loaded.simulation!.pairs.length, 4500);
      assert.equal(matchSimulation(loaded.simulation!.pairs, req({ method: 'POST', path: '/v1/charges/4499', body: JSON.stringify({ note: 'x'.repeat(500), amount: 4499 }) }))?.response.body, JSON.stringify({ id: 'ch_4499', pad: 'y'.repeat(400) }));
      // A problem deep in it is still at its line:col.
      const broken = text.replace('"/v1/charges/4000"', '"/v1/charges/4000", "extra": 1');
      const line = broken.slice(0, broken.indexOf('"extra"')).split('\n').length;
      assert.deepEqual(
        parseSimulation({ file: 'recorded.json', text: broken }, '/recorded.json').diagnostics.map((d) => [d.line, d.message]),
        [[line, 'data.pairs[4000].request.path[0].extra: unknown field']],
      );
      // In YAML syntax the config's parser reads it, within the config's size.
      const yaml = parseSimulation({ file: 'recorded.yaml', text: `# recorded\n${text}` }, '/recorded.yaml').diagnostics;
      assert.match(yaml[0]!.message, /^simulation is \d+ bytes; in YAML syntax the limit is 4194304 \(in JSON, as Hoverfly writes it, 33554432\)$/);
      // Past the simulation's own limit: never read.
      const huge = join(tmp.dir, 'huge.json');
      writeFileSync(huge, '{' + ' '.repeat(33 * 1024 * 1024) + '}');
      const refused = loadSimulation(huge, 'huge.json').diagnostics;
      assert.equal(refused.length, 1);
      assert.match(refused[0]!.message, /^simulation is 34603010 bytes; the limit is 33554432 \(is this the right file\?\)$/);
      assert.equal(refused[0]!.file, 'huge.json');
    } finally {
      tmp.remove();
    }
  });

  test('validate reports a simulation error with the simulation file line:col, and fails', async () => {
    const tmp = tempDir();
    try {
      writeFileSync(join(tmp.dir, 'payments.json'), '{\n  "data": { "pairs": [ { "request": { "path": [ { "matcher": "jwt", "value": "x" } ] }, "response": {} } ] },\n  "meta": { "schemaVersion": "v5" }\n}\n');
      const config = join(tmp.dir, 'gateway.yaml');
      writeFileSync(
        config,
        'upstreams: { a: "http://127.0.0.1:1" }\nroutes: [{ name: r, backends: [{ upstream: a }] }]\ndependencies:\n  payments: { url: "http://127.0.0.1:2", simulation: payments.json }\n',
      );
      const result = validateConfigFile(config);
      assert.equal(result.config, undefined);
      const d = result.diagnostics.find((x) => x.message.includes('"jwt" is not supported'))!;
      assert.equal(d.line, 2);
      assert.ok(d.file.endsWith('payments.json'));
      const cli = await runCli(['validate', '--config', config], { cwd: tmp.dir });
      assert.notEqual(cli.code, 0);
      assert.match(cli.stdout + cli.stderr, /payments\.json:2:\d+: error: .*"jwt" is not supported/);
    } finally {
      tmp.remove();
    }
  });
});

describe('egress config', () => {
  const base = 'upstreams: { a: "http://127.0.0.1:1" }\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n';
  const check = (text: string) => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, 'gateway.yaml');
      writeFileSync(file, base + text);
      return validateConfigFile(file);
    } finally {
      tmp.remove();
    }
  };

  test('defaults, and names normalized', () => {
    const result = check('egress: { live: 9911, dark: 9912 }\ndependencies:\n  payments: { url: "https://api.example/v1/", passthrough: [get] }\n');
    assert.deepEqual(result.diagnostics, []);
    const config = result.config!;
    assert.deepEqual(config.egress, { live: { host: '127.0.0.1', port: 9911 }, dark: { host: '127.0.0.1', port: 9912 } });
    const payments = config.dependencies!['payments']!;
    assert.equal(payments.url, 'https://api.example/v1');
    assert.deepEqual(payments.passthrough, ['GET']);
    assert.equal(payments.waitMs, 2000);
    assert.equal(config.limits.recordBytes, 64 * 1024 * 1024);
    assert.equal(config.timeouts.recordMs, 30_000);
  });

  test('clashing and exposed egress addresses, bad URLs and pointers', () => {
    const result = check(
      'listen: 127.0.0.1:8080\negress: { live: 127.0.0.1:8080, dark: 0.0.0.0:9912 }\ndependencies:\n  p: { url: "ftp://x", ignoreBody: ["/a~2"] }\n  q: { url: "http://x", ignoreBody: ["/a~2"] }\n',
    );
    const codes = result.diagnostics.map((d) => `${d.severity}:${d.code}:${d.path}`);
    assert.ok(codes.includes('error:address-clash:egress.live'), codes.join('\n'));
    assert.ok(codes.includes('warning:egress-exposed:egress.dark'), codes.join('\n'));
    assert.ok(codes.some((c) => c.startsWith('error:') && c.includes('dependencies.p')), codes.join('\n'));
    assert.ok(codes.includes('error:pointer:dependencies.q.ignoreBody[0]'), codes.join('\n'));
  });

  test('ignoreBody takes "", the whole body', () => {
    const result = check('dependencies:\n  payments: { url: "http://x", ignoreBody: [""] }\n');
    assert.deepEqual(result.diagnostics, []);
    assert.deepEqual(result.config!.dependencies!['payments']!.ignoreBody, ['']);
  });
});
