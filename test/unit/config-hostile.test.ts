/**
 * Hostile configs are refused quickly with a clear, positioned message:
 * alias bombs, deep nesting of every kind, huge files, huge mappings.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MAX_CONFIG_BYTES, readConfigFile } from '../../src/config/load.js';
import { validateConfigSource } from '../../src/config/validate.js';
import { tempDir } from '../helpers/gateway.js';

const base = 'upstreams: { a: http://127.0.0.1:1 }\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n';
const lines = (n: number, line: (i: number) => string) => Array.from({ length: n }, (_, i) => line(i)).join('\n');

/** Generous on a loaded 2-core machine; each case takes milliseconds to about a second. */
const FAST_MS = 5000;

const cases: { name: string; text: () => string; error: RegExp | undefined }[] = [
  {
    name: 'billion laughs: 12 levels of 10 aliases',
    text: () => 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' + lines(12, (i) => `l${i}: &l${i} [${Array(10).fill(i ? `*l${i - 1}` : '*a').join(',')}]`) + '\n' + base,
    error: /aliases expand too far/,
  },
  { name: '5,000 aliases of one scalar', text: () => `a: &a x\nb: [${Array(5000).fill('*a').join(',')}]\n${base}`, error: /aliases expand too far/ },
  { name: '100,000 nested flow sequences', text: () => `x: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n${base}`, error: /nesting deeper than 64 levels/ },
  { name: '50,000 nested flow mappings', text: () => `x: ${'{a: '.repeat(50_000)}1${'}'.repeat(50_000)}\n`, error: /nesting deeper than 64 levels/ },
  { name: '20,000 nested block sequences on one line', text: () => `${'- '.repeat(20_000)}a\n`, error: /nesting deeper than 64 levels/ },
  { name: '200 levels of block indentation', text: () => lines(200, (i) => `${' '.repeat(i)}k${i}:`) + ' v\n', error: /nesting deeper than 64 levels/ },
  { name: '20,000 explicit-key markers', text: () => `x: ${'? '.repeat(20_000)}a\n${base}`, error: /./ },
  { name: 'a mapping of 100,000 keys', text: () => `${base}extra:\n${lines(100_000, (i) => `  k${i}: ${i}`)}\n`, error: /a mapping of 100000 entries; the limit is 10000/ },
  { name: 'a flow mapping of 50,000 keys', text: () => `${base}extra: {${lines(50_000, (i) => `k${i}: ${i}`).replace(/\n/g, ', ')}}\n`, error: /a mapping of 50000 entries; the limit is 10000/ },
  { name: 'a mapping of 10,000 keys', text: () => `${base}extra:\n${lines(10_000, (i) => `  k${i}: ${i}`)}\n`, error: /unknown key "extra"/ },
  { name: 'a list of 20,000 entries', text: () => `${base}trustedProxies: [${Array(20_000).fill('10.0.0.1').join(',')}]\n`, error: /a list of 20000 entries; the limit is 10000/ },
  {
    name: '5,001 routes',
    text: () => `upstreams: { a: http://127.0.0.1:1 }\nroutes:\n${lines(5001, (i) => `  - { name: r${i}, match: { prefix: /p${i} }, backends: [{ upstream: a }] }`)}\n`,
    error: /routes: 5001 routes; the limit is 5000/,
  },
  { name: 'a 3 MB scalar', text: () => `x: ${'a'.repeat(3_000_000)}\n${base}`, error: /unknown key "x"/ },
  { name: 'just under the size limit, all comments', text: () => base + lines(100_000, (i) => `# ${i} ${'z'.repeat(30)}`).slice(0, MAX_CONFIG_BYTES - base.length - 10), error: undefined },
];

describe('hostile configs', () => {
  for (const c of cases) {
    test(`${c.name}: ${c.error ? 'refused' : 'accepted'} quickly`, () => {
      const text = c.text();
      const started = performance.now();
      const result = validateConfigSource({ file: 'hostile.yaml', text });
      const ms = performance.now() - started;
      const errors = result.diagnostics.filter((d) => d.severity === 'error');
      if (c.error) {
        assert.ok(errors.length > 0, 'refused');
        assert.match(errors[0]!.message, c.error);
        assert.ok(errors[0]!.line >= 1 && errors[0]!.column >= 1);
      } else {
        assert.deepEqual(errors, []);
      }
      assert.ok(ms < FAST_MS, `took ${ms.toFixed(0)} ms`);
    });
  }

  test('a duplicate key among 10,000 is found, at its line', () => {
    const text = `${base}x:\n${lines(10_000, (i) => `  k${i === 8_000 ? 7 : i}: ${i}`)}\n`;
    const started = performance.now();
    const errors = validateConfigSource({ file: 'dup.yaml', text }).diagnostics.filter((d) => d.severity === 'error');
    assert.ok(performance.now() - started < FAST_MS);
    assert.equal(errors[0]?.message, 'Map keys must be unique');
    assert.equal(errors[0]?.line, 3 + 1 + 8_000);
    assert.equal(errors[0]?.column, 3);
  });

  test('a file over the size limit is refused without being read', () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, 'huge.yaml');
      writeFileSync(file, Buffer.alloc(MAX_CONFIG_BYTES + 1, 'a'));
      const started = performance.now();
      const source = readConfigFile(file);
      assert.equal(source.text, '');
      assert.equal(source.oversize, MAX_CONFIG_BYTES + 1);
      const errors = validateConfigSource(source).diagnostics;
      assert.match(errors[0]!.message, /the limit is 4194304/);
      assert.ok(performance.now() - started < 1000);
    } finally {
      tmp.remove();
    }
  });
});
