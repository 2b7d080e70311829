/**
 * Parsing large JSON answers from their bytes in pieces gives JSON.parse's
 * value, key order and errors exactly: hand-made edge cases, pretty-printed
 * documents, and seeded random documents with and without a byte broken,
 * parsed at once and with their small parts deferred. The byte scan that
 * admits a deferred part agrees with JSON.parse on every text tried.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compareJson } from '../../src/diff/compare.js';
import { isJsonValue, parseJsonBytes, plain, Unparsed, type ParsedJson } from '../../src/diff/json-bytes.js';
import { lift } from '../../src/diff/lift.js';
import { IgnoreRules } from '../../src/diff/paths.js';

/** Whether `value` holds a deferred part anywhere. */
function holdsUnparsed(value: unknown): boolean {
  if (value instanceof Unparsed) return true;
  if (value === null || typeof value !== 'object') return false;
  return Object.values(value).some(holdsUnparsed);
}

/**
 * The same outcome as JSON.parse of the text, parsed at once and with its
 * small parts deferred: a value (same JSON, same key order, same own keys)
 * or the same error.
 */
function assertSameAsJsonParse(text: string, note = '', reference?: ParsedJson): void {
  const bytes = Buffer.from(text, 'utf8');
  // What the bytes say (a lone surrogate in `text` is U+FFFD in them), as lift decoded it before.
  const decoded = bytes.toString('utf8');
  let expected: unknown;
  let expectedError: unknown;
  try {
    expected = JSON.parse(decoded.charCodeAt(0) === 0xfeff ? decoded.slice(1) : decoded);
  } catch (err) {
    expectedError = err;
  }
  for (const defer of [false, true]) {
    const how = `${note}${defer ? ', deferred' : ''}`;
    if (expectedError !== undefined) {
      assert.throws(
        () => parseJsonBytes(bytes, reference, defer).value,
        (err: Error) => err instanceof SyntaxError && err.message === (expectedError as Error).message,
        `${how}: the same error as JSON.parse`,
      );
      continue;
    }
    const parsed = parseJsonBytes(bytes, reference, defer).value;
    if (!defer && !reference) assert.equal(holdsUnparsed(parsed), false, `${how}: nothing deferred unless asked`);
    const got = plain(parsed);
    assert.equal(holdsUnparsed(got), false, `${how}: plain leaves nothing deferred`);
    assert.deepStrictEqual(got, expected, how);
    // deepStrictEqual ignores key order; JSON text does not.
    assert.equal(JSON.stringify(got), JSON.stringify(expected), `${how}: key order`);
    assert.equal(JSON.stringify(parsed), JSON.stringify(expected), `${how}: JSON.stringify of the deferred tree`);
  }
}

/** A deterministic random source (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TRICKY_STRINGS = ['', ',', '[', ']', '{', '}', '"', '\\', '\\"', 'a\\', '},{', '","', 'é', '日本', '😀', '\u2028', '\n', '\t', '__proto__', '{"x":[1,2]}'];
/**
 * Keys: the same, less the one-character strings JSON writes as an escape
 * ("\"", "\\", "\n", "\t"). Node 24.21's JSON.parse reads such a key as
 * another such key it parsed before (`JSON.parse('{"\\n":1}')` after
 * `JSON.parse('{"\\\\":1}')` gives the key "\\", every time): a V8 bug,
 * shown with JSON.parse alone, that makes the reference itself wrong. Values
 * keep them; so do keys of more than one character.
 */
const TRICKY_KEYS = TRICKY_STRINGS.filter((s) => !(s.length === 1 && JSON.stringify(s).length === 4));

/** A random JSON value of about `budget.left` scalars in all, nested up to six levels. */
function randomValue(next: () => number, depth: number, budget: { left: number }): unknown {
  budget.left--;
  const pick = next();
  if (depth > 5 || budget.left <= 0 || pick < 0.35) {
    const kind = Math.floor(next() * 5);
    if (kind === 0) return Math.floor(next() * 1e6) / (next() < 0.5 ? 1 : 100);
    if (kind === 1) return TRICKY_STRINGS[Math.floor(next() * TRICKY_STRINGS.length)]! + 'x'.repeat(Math.floor(next() * 40));
    if (kind === 2) return next() < 0.5;
    if (kind === 3) return null;
    return 'v' + Math.floor(next() * 1000);
  }
  const count = Math.floor(next() * (depth === 0 ? 3000 : depth === 1 ? 40 : 6));
  const children = () => Array.from({ length: count }, () => randomValue(next, depth + 1, budget));
  if (pick < 0.65) return children();
  const object: Record<string, unknown> = {};
  for (const child of children()) {
    const key = next() < 0.1 ? TRICKY_KEYS[Math.floor(next() * TRICKY_KEYS.length)]! : next() < 0.1 ? String(Math.floor(next() * 50)) : 'k' + Math.floor(next() * 200);
    object[key] = child;
  }
  return object;
}

const items = (n: number, extra = '') => Array.from({ length: n }, (_, i) => ({ id: i, name: `item-${i}${extra}`, tags: ['a', 'b'], stock: { w: `w${i % 7}`, n: i % 50 } }));

/** A large document broken in the ways a scan of its structure could be misled by. */
function brokenDocuments(good = JSON.stringify({ data: items(3000) })): string[] {
  return [
    good.replace('},{', '},,{'),
    good.replace('},{', '}{'),
    good.replace('},{', '},{,'),
    good.slice(0, -1),
    good + ']',
    good + ' x',
    good.replace('"item-1500"', '"item-1500'),
    good.replace(']', ',]'),
    good.replace('"data":', '"data"'),
    good.replace('"data":', 'data:'),
    good.replace('[', '['.repeat(3)),
    good.replace(/\}\]\}$/, '}}}'),
    good.replace('"tags":["a","b"]', '"tags":["a","b"}'),
    good.replace('{"id":1500,', '["id":1500,'),
    good.replace('"item-2000"', '"item-\u0001"'),
    '[' + JSON.stringify(items(3000)).slice(1, -1) + ',]',
  ];
}

describe('parseJsonBytes', () => {
  test('small documents are parsed whole, as JSON.parse does', () => {
    for (const text of ['{}', '[]', '1', '"x"', 'null', ' [1, 2] ', '\ufeff{"a":1}', '[1,]', '{"a":1', 'nope', '']) assertSameAsJsonParse(text, JSON.stringify(text));
  });

  test('large arrays and objects, compact and pretty, ASCII and not', () => {
    const big = items(3000);
    assertSameAsJsonParse(JSON.stringify(big), 'compact array');
    assertSameAsJsonParse(JSON.stringify(big, null, 2), 'pretty array');
    assertSameAsJsonParse(JSON.stringify({ data: { items: big, total: big.length }, next: null }), 'array two levels down');
    assertSameAsJsonParse(JSON.stringify({ data: { items: big } }, null, '\t') + '\r\n', 'tabs and CRLF after');
    // Two-byte text reaches V8's large-object size at half the length.
    assertSameAsJsonParse(JSON.stringify(items(900, ' 日本語 😀')), 'non-ASCII array');
    assertSameAsJsonParse('\ufeff' + JSON.stringify(big), 'byte-order mark');
    const keyed = Object.fromEntries(big.map((item) => [`key-${item.id}`, item]));
    assertSameAsJsonParse(JSON.stringify(keyed), 'large object');
  });

  test('strings that look like structure do not cut the text', () => {
    const tricky = Array.from({ length: 4000 }, (_, i) => TRICKY_STRINGS[i % TRICKY_STRINGS.length]! + (i % 3 === 0 ? '\\' : ''));
    assertSameAsJsonParse(JSON.stringify(tricky), 'tricky strings');
    assertSameAsJsonParse(JSON.stringify({ 'a,b': tricky, '"}': tricky, 'a\\': { '[': tricky } }), 'tricky keys over large members');
    // One string larger than a piece: parsed as it is.
    assertSameAsJsonParse(JSON.stringify({ blob: 'x'.repeat(200_000), after: [1, 2] }), 'large string member');
    assertSameAsJsonParse(JSON.stringify(['y'.repeat(70_000), 'z'.repeat(70_000)]), 'large string elements');
  });

  test('duplicate keys keep the first position and the last value; __proto__ stays an own key', () => {
    const members = Array.from({ length: 3000 }, (_, i) => `"k${i % 1000}":{"i":${i},"pad":"${'p'.repeat(40)}"}`);
    assertSameAsJsonParse(`{${members.join(',')}}`, 'duplicates across pieces');
    const withProto = `{"__proto__":{"polluted":true},${members.slice(0, 2000).join(',')},"__proto__":[${members.map((_, i) => i).join(',')}]}`;
    assertSameAsJsonParse(withProto, '__proto__ member');
    const parsed = parseJsonBytes(Buffer.from(withProto)).value as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
    assert.ok(Object.hasOwn(parsed, '__proto__'));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    const bigProto = `{"a":1,"__proto__":${JSON.stringify(items(2000))}}`;
    assertSameAsJsonParse(bigProto, 'large __proto__ member');
  });

  test('a body of very many small children is parsed whole, not recorded child by child', () => {
    const many = JSON.stringify(Array.from({ length: 120_000 }, (_, i) => i % 10));
    assertSameAsJsonParse(many, 'many children');
    assert.equal(parseJsonBytes(Buffer.from(many)).layout, undefined);
    const some = JSON.stringify(Array.from({ length: 20_000 }, (_, i) => i));
    assert.ok(parseJsonBytes(Buffer.from(some)).layout, 'fewer children are split');
    assertSameAsJsonParse(JSON.stringify({ a: many.length, rows: Array.from({ length: 30 }, () => Array.from({ length: 3000 }, (_, i) => i)) }), 'many children over several containers');
  });

  test('nesting deeper than the split depth is parsed whole', () => {
    let text = JSON.stringify(items(2500));
    for (let i = 0; i < 20; i++) text = i % 2 ? `{"level${i}":${text},"n":${i}}` : `[${i},${text}]`;
    assertSameAsJsonParse(text, '20 levels of large containers');
  });

  test('broken documents give JSON.parse error', () => {
    for (const [i, text] of brokenDocuments().entries()) assertSameAsJsonParse(text, `broken #${i}`);
  });

  test('random documents, whole and with one byte broken, against JSON.parse', () => {
    let large = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const next = random(seed);
      const value = randomValue(next, 0, { left: 12_000 });
      const text = JSON.stringify(value, null, next() < 0.5 ? undefined : 1);
      if (Buffer.byteLength(text) > 60 * 1024) large++;
      assertSameAsJsonParse(text, `seed ${seed}`);
      for (let k = 0; k < 3; k++) {
        const at = Math.floor(next() * text.length);
        const mutation = Math.floor(next() * 3);
        const mutant = mutation === 0 ? text.slice(0, at) + text.slice(at + 1) : mutation === 1 ? text.slice(0, at) + ',' + text.slice(at) : text.slice(0, at) + '"' + text.slice(at);
        assertSameAsJsonParse(mutant, `seed ${seed}, mutation ${k}`);
      }
    }
    assert.ok(large >= 10, `most seeds make documents large enough to be split (${large} did)`);
  });
});

/** Changes one number in the text (the first after `from`), keeping it JSON. */
function changeOneNumber(text: string, from: number): string {
  const at = text.slice(from).search(/(?<=[:,[]\s*)\d/);
  if (at < 0) return text;
  return text.slice(0, from + at) + '9' + text.slice(from + at);
}

describe('parseJsonBytes with the other answer as reference', () => {
  const big = JSON.stringify({ data: { items: items(3000) }, page: 1 });
  const changed = big.replace('"name":"item-1500"', '"name":"item-1500b"');

  test('what is the same byte for byte is shared, what differs is parsed', () => {
    const primary = parseJsonBytes(Buffer.from(big));
    assert.ok(primary.layout, 'a large body is split');
    const shadow = parseJsonBytes(Buffer.from(changed), primary);
    assert.deepStrictEqual(shadow.value, JSON.parse(changed));
    const mine = (primary.value as { data: { items: object[] } }).data.items;
    const theirs = (shadow.value as { data: { items: object[] } }).data.items;
    assert.equal(theirs[0], mine[0], 'an unchanged item is the primary one');
    assert.equal(theirs[2999], mine[2999]);
    assert.notEqual(theirs[1500], mine[1500], 'the changed item is its own');
    assert.notEqual(shadow.value, primary.value);
  });

  test('the comparison finds the same differences as with whole parses', () => {
    const repeated = `{${Array.from({ length: 3000 }, (_, i) => `"k${i % 1000}":{"i":${i},"pad":"${'p'.repeat(40)}"}`).join(',')}}`;
    const rules = new IgnoreRules([]);
    const limits = { maxNodes: 1_000_000, maxDepth: 64 };
    const pairs: [string, string][] = [
      [big, changed],
      [big, big],
      [big, JSON.stringify({ data: { items: items(3000).reverse() }, page: 1 })],
      [big, JSON.stringify({ data: { items: items(2999) }, page: 1 })],
      [big, JSON.stringify({ data: { items: [{ inserted: true }, ...items(3000)] }, page: 1 })],
      [big, JSON.stringify([items(3000)])],
      [big, JSON.stringify({ page: 1, data: { items: items(3000) } })],
      [big, JSON.stringify({ data: { items: items(3000) }, page: 1 }, null, 1)],
      [repeated, repeated.replace('"i":5,', '"i":6,')],
      [repeated, JSON.stringify(JSON.parse(repeated), null, 1)],
    ];
    for (const [i, [a, b]] of pairs.entries()) {
      const whole = compareJson(JSON.parse(a), JSON.parse(b), rules, limits).differences;
      for (const defer of [false, true]) {
        const primary = parseJsonBytes(Buffer.from(a), undefined, defer);
        const shadow = parseJsonBytes(Buffer.from(b), primary);
        const shared = compareJson(primary.value, shadow.value, rules, limits).differences;
        assert.deepStrictEqual(shared, whole, `pair ${i}${defer ? ', primary deferred' : ''}`);
        for (const d of shared) assert.equal(holdsUnparsed(d.primary) || holdsUnparsed(d.shadow), false, `pair ${i}: differences hold parsed values`);
      }
    }
  });

  test('random documents against a changed copy and against an unrelated one', () => {
    let shared = 0;
    const rules = new IgnoreRules([]);
    const limits = { maxNodes: 10_000_000, maxDepth: 64 };
    for (let seed = 100; seed < 130; seed++) {
      const next = random(seed);
      const text = JSON.stringify(randomValue(next, 0, { left: 12_000 }), null, next() < 0.5 ? undefined : 1);
      let copy = text;
      for (let k = 0; k < 3; k++) copy = changeOneNumber(copy, Math.floor(next() * copy.length));
      const unrelated = JSON.stringify(randomValue(random(seed + 1000), 0, { left: 12_000 }));
      const at = Math.floor(next() * copy.length);
      for (const defer of [false, true]) {
        const reference = parseJsonBytes(Buffer.from(text), undefined, defer);
        if (reference.layout && !defer) shared++;
        assertSameAsJsonParse(copy, `seed ${seed}, changed copy`, reference);
        assertSameAsJsonParse(unrelated, `seed ${seed}, unrelated`, reference);
        assertSameAsJsonParse(copy.slice(0, at) + copy.slice(at + 1), `seed ${seed}, changed copy with a byte removed`, reference);
        // The comparison, as the pair's is made: the primary first, then the copy sharing its parts.
        const theirs = parseJsonBytes(Buffer.from(copy), reference);
        const found = compareJson(reference.value, theirs.value, rules, limits).differences;
        assert.deepStrictEqual(found, compareJson(JSON.parse(text), JSON.parse(copy), rules, limits).differences, `seed ${seed}${defer ? ', deferred' : ''}: differences`);
        assert.deepStrictEqual(plain(reference.value), JSON.parse(text), `seed ${seed}: the reference is whole after sharing`);
      }
    }
    assert.ok(shared >= 5, `enough references are split (${shared} were)`);
  });

  test('a deferred primary shares its unparsed parts, and only what differs is parsed', () => {
    const primary = parseJsonBytes(Buffer.from(big), undefined, true);
    const shadow = parseJsonBytes(Buffer.from(changed), primary);
    const mine = (primary.value as { data: { items: unknown[] } }).data.items;
    const theirs = (shadow.value as { data: { items: unknown[] } }).data.items;
    assert.ok(mine[0] instanceof Unparsed, 'a small part of the primary is deferred');
    assert.equal(theirs[0], mine[0], 'and shared as it is');
    assert.ok(!(theirs[1500] instanceof Unparsed), "the shadow's differing part is parsed");
    const differences = compareJson(primary.value, shadow.value, new IgnoreRules([]), { maxNodes: 1_000_000, maxDepth: 64 }).differences;
    assert.deepStrictEqual(
      differences.map((d) => [d.pointer, d.primary, d.shadow]),
      [['/data/items/1500/name', 'item-1500', 'item-1500b']],
    );
  });

  test('a broken copy of the primary gives JSON.parse error, and so does each byte broken at random', () => {
    const good = JSON.stringify({ data: items(3000) });
    for (const defer of [false, true]) {
      const reference = parseJsonBytes(Buffer.from(good), undefined, defer);
      for (const [i, text] of brokenDocuments(good).entries()) assertSameAsJsonParse(text, `broken #${i} against the good one${defer ? ' deferred' : ''}`, reference);
    }
    for (let seed = 200; seed < 220; seed++) {
      const next = random(seed);
      const text = JSON.stringify(randomValue(next, 0, { left: 12_000 }), null, next() < 0.5 ? undefined : 1);
      const reference = parseJsonBytes(Buffer.from(text), undefined, next() < 0.5);
      for (let k = 0; k < 4; k++) {
        const at = Math.floor(next() * text.length);
        const insert = ['', ',', '"', ']', '}', '['][Math.floor(next() * 6)]!;
        const mutant = text.slice(0, at) + insert + text.slice(at + (insert === '' || next() < 0.5 ? 1 : 0));
        assertSameAsJsonParse(mutant, `seed ${seed}, mutation ${k} (${JSON.stringify(insert)} at ${at})`, reference);
      }
    }
  });

  test("a part that begins with the other side's whole part is not taken for it", () => {
    const numbers = Array.from({ length: 40_000 }, (_, i) => i % 100);
    const text = JSON.stringify(numbers);
    const reference = parseJsonBytes(Buffer.from(text));
    assert.ok(reference.layout, 'the array is split');
    for (const longer of ['1e5', '10', '1.5', '12,3']) {
      const copy = text.replace('[0,1,2,', `[0,${longer},2,`);
      assertSameAsJsonParse(copy, `1 written ${longer}`, reference);
    }
    const members = `{${Array.from({ length: 8000 }, (_, i) => `"k${i}":${i % 10}`).join(',')}}`;
    assertSameAsJsonParse(members.replace('"k1":1,', '"k1":1e3,'), 'a member written longer', parseJsonBytes(Buffer.from(members)));
  });

  test('members repeating a key are never shared one by one', () => {
    const members = Array.from({ length: 3000 }, (_, i) => `"k${i % 1000}":{"i":${i},"pad":"${'p'.repeat(40)}"}`);
    const text = `{${members.join(',')}}`;
    const reference = parseJsonBytes(Buffer.from(text));
    assertSameAsJsonParse(`{${members.slice(0, 2000).join(',')},"k5":1}`, 'shorter, against repeated keys', reference);
    assertSameAsJsonParse(`{${members.map((m, i) => (i === 10 ? '"k9":2' : m)).join(',')}}`, 'one member changed', reference);
  });
});

describe('lift', () => {
  test('a large JSON body that is not valid JSON is still compared as text, with the parse error', () => {
    const text = JSON.stringify(items(3000)).slice(0, -1);
    const lifted = lift({ headers: { 'content-type': 'application/json' }, body: Buffer.from(text), truncated: false }, 1 << 24);
    assert.equal(lifted.format, 'text');
    assert.equal(lifted.format === 'text' && lifted.text, text);
    let message = '';
    try {
      JSON.parse(text);
    } catch (err) {
      message = (err as Error).message;
    }
    assert.equal(lifted.note, `not valid JSON (${message})`);
  });
});

describe('isJsonValue', () => {
  const accepts = (text: string) => {
    const bytes = Buffer.from(text, 'utf8');
    return isJsonValue(bytes, 0, bytes.length);
  };
  const parses = (text: string) => {
    try {
      JSON.parse(text);
      return true;
    } catch {
      return false;
    }
  };

  test('agrees with JSON.parse on the edges of the grammar', () => {
    const texts = [
      '0', '-0', '01', '-', '-a', '1.', '.5', '1.5', '1e', '1e+', '1E5', '1e-07', '-01', '0.0e-0', '00', '1.2.3', '+1', '0x10', 'Infinity', 'NaN',
      '""', '"a', 'a"', '"\\"', '"\\x"', '"\\u12G4"', '"\\u123"', '"\\u0041"', '"\\uD800"', '"\\/"', '"\\b\\f\\n\\r\\t"', '"\t"', '"\u0001"', '"\u007f"', '"\u2028"', '"日本"', "'a'",
      'true', 'tru', 'truex', 'false', 'null', 'nul', 'nulls', 'true false', 'True',
      '[]', '{}', '[ ]', '{ }', '[,]', '{,}', '[1,]', '[,1]', '[1 2]', '[1,,2]', '[[[]]]', '[[]', '[]]', '{"a":}', '{"a" 1}', '{"a":1,}', '{a:1}', '{"a":1 "b":2}', '{"a":[1,{"b":null}]}',
      '{"a":1}{', '[1]x', ' \t\n\r1 \r\n', '\f1', '\u00a01', '', ' ', '{"":""}', '{"a":"b","a":"c"}', '[1,[2,[3,[4,[5]]]]]', '[-1e10,0.5E-3,"x",true,null,{}]',
    ];
    for (const text of texts) assert.equal(accepts(text), parses(text), JSON.stringify(text));
  });

  test('agrees with JSON.parse on random documents with bytes removed, added and swapped', () => {
    const alphabet = ['{', '}', '[', ']', ',', ':', '"', '\\', '-', '.', 'e', '0', '1', ' ', 'n', 't', 'u', '\n', '\u0001', 'é'];
    let valid = 0;
    let invalid = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const next = random(seed);
      const text = JSON.stringify(randomValue(next, 3, { left: 40 }), null, next() < 0.3 ? 1 : undefined) ?? 'null';
      for (let k = 0; k < 20; k++) {
        let mutant = text;
        for (let m = 0, count = 1 + Math.floor(next() * 2); m < count; m++) {
          const at = Math.floor(next() * (mutant.length + 1));
          const pick = Math.floor(next() * 3);
          const char = alphabet[Math.floor(next() * alphabet.length)]!;
          mutant = pick === 0 ? mutant.slice(0, at) + mutant.slice(at + 1) : pick === 1 ? mutant.slice(0, at) + char + mutant.slice(at) : mutant.slice(0, at) + char + mutant.slice(at + 1);
        }
        const verdict = parses(mutant);
        if (verdict) valid++;
        else invalid++;
        assert.equal(accepts(mutant), verdict, `seed ${seed}: ${JSON.stringify(mutant)}`);
      }
      assert.equal(accepts(text), true, `seed ${seed} unchanged`);
    }
    assert.ok(valid > 200 && invalid > 2000, `both kinds tried (${valid} valid, ${invalid} not)`);
  });

  test('reads only its range', () => {
    const bytes = Buffer.from('[1.5e3,"ab",true]');
    assert.equal(isJsonValue(bytes, 1, 6), true);
    assert.equal(isJsonValue(bytes, 1, 4), true, '1.5 before the exponent');
    assert.equal(isJsonValue(bytes, 1, 5), false, '1.5e with no digit');
    assert.equal(isJsonValue(bytes, 7, 11), true);
    assert.equal(isJsonValue(bytes, 7, 10), false, 'a string cut before its quote');
    assert.equal(isJsonValue(bytes, 12, 15), false, 'a literal cut short');
    assert.equal(isJsonValue(bytes, 0, bytes.length - 1), false, 'an array without its bracket');
  });
});
