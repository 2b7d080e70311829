/**
 * JSON read into the YAML library's nodes: the same values as JSON.parse,
 * the same source positions as the YAML parser gives, and every malformed
 * or hostile input an error at its offset.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMap, isPair, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { parseJsonNodes } from '../../src/config/json-nodes.js';

const LIMITS = { maxDepth: 64, maxItems: 1000 };

/** Every node's start offset, depth first, keys included. */
function starts(node: unknown, out: number[] = []): number[] {
  if (isPair(node)) {
    starts(node.key, out);
    starts(node.value, out);
  } else if (isMap(node) || isSeq(node)) {
    out.push((node as Node).range![0]);
    for (const item of node.items) starts(item, out);
  } else if (isScalar(node)) out.push(node.range![0]);
  return out;
}

const SAMPLES = [
  '{}',
  '[]',
  '{"a":1}',
  ' \n\t{ "a" : [ 1, -2.5, 3e10, -0, 0.125E-3, true, false, null ] }\r\n',
  '{"text":"plain","escaped":"q\\"uote\\\\ back\\\\\\"slash \\u00e9\\n","empty":"","unicode":"ünïcødé ✓"}',
  '{"ends in backslashes":"a\\\\\\\\","next":1}',
  '{\n  "data": {\n    "pairs": [\n      { "request": { "path": [ { "matcher": "exact", "value": "/x" } ] } }\n    ]\n  }\n}',
  '"just a string"',
  '42',
];

describe('parseJsonNodes', () => {
  for (const text of SAMPLES) {
    test(`reads ${JSON.stringify(text.slice(0, 40))} as JSON.parse and the YAML parser do`, () => {
      const parsed = parseJsonNodes(text, LIMITS);
      assert.ok(parsed.ok, !parsed.ok ? parsed.message : '');
      assert.deepEqual(parsed.contents.toJSON(), JSON.parse(text));
      assert.deepEqual(starts(parsed.contents), starts(parseDocument(text).contents));
    });
  }

  const failure = (text: string, limits = LIMITS) => {
    const parsed = parseJsonNodes(text, limits);
    assert.equal(parsed.ok, false, `${JSON.stringify(text)} was accepted`);
    if (parsed.ok) throw new Error('unreachable');
    const pos = parsed.lines.linePos(parsed.offset);
    return { message: parsed.message, offset: parsed.offset, line: pos.line, column: pos.col };
  };

  test('malformed JSON: an error at the offending character', () => {
    assert.deepEqual(failure('{"a":1,}'), { message: 'expected a string key', offset: 7, line: 1, column: 8 });
    assert.equal(failure('{"a":1\n "b":2}').line, 2);
    assert.match(failure('[1,2').message, /unexpected end of JSON/);
    assert.match(failure('{"a":1} x').message, /unexpected text after the JSON value/);
    assert.match(failure('{"a":tru}').message, /unexpected character "t"/);
    assert.match(failure('{"a":01}').message, /expected "," or "}"/);
    assert.match(failure('{"a" 1}').message, /expected ":"/);
    assert.match(failure('').message, /unexpected end of JSON/);
    assert.match(failure("{'a':1}").message, /expected a string key/);
  });

  test('strings: unterminated, raw control characters and bad escapes are refused', () => {
    assert.deepEqual(failure('{"a":"open}'), { message: 'unterminated string', offset: 5, line: 1, column: 6 });
    assert.match(failure('{"a":"tab\there"}').message, /control character/);
    assert.match(failure('{"a":"\\x41"}').message, /bad escape/);
    assert.match(failure('{"a":"ends in an escaped quote\\"}').message, /unterminated string/);
  });

  test('a repeated key is an error at the repeat, in small and large mappings', () => {
    assert.deepEqual(failure('{"a":1,"b":2,"a":3}'), { message: 'Map keys must be unique', offset: 13, line: 1, column: 14 });
    const many = Array.from({ length: 40 }, (_, i) => `"k${i}":${i}`).join(',');
    assert.equal(failure(`{${many},"k39":0}`).message, 'Map keys must be unique');
    assert.ok(parseJsonNodes(`{${many}}`, LIMITS).ok);
  });

  test('nesting and size are bounded, without exhausting the stack', () => {
    assert.match(failure('{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000)).message, /nesting deeper than 64 levels/);
    assert.match(failure('['.repeat(100_000)).message, /nesting deeper than 64 levels/);
    assert.ok(parseJsonNodes('['.repeat(64) + ']'.repeat(64), LIMITS).ok);
    assert.match(failure(`[${'1,'.repeat(1000)}1]`).message, /a list of more than 1000 entries/);
    assert.match(failure(`{${Array.from({ length: 1001 }, (_, i) => `"k${i}":1`).join(',')}}`).message, /a mapping of more than 1000 entries/);
  });
});
