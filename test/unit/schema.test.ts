/**
 * The JSON Schema for editors and the validator must agree: the committed
 * schema is exactly what the spec generates, and on every fixture and
 * example both accept, or both reject the shape.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import AjvModule from 'ajv';
import { parse } from 'yaml';
import { jsonSchemaText, generateJsonSchema } from '../../src/config/json-schema.js';
import { validateConfigSource } from '../../src/config/validate.js';
import { REPO_ROOT } from '../helpers/cli.js';

/** Problems a JSON Schema can express; the rest (references, clashes) it cannot. */
const SHAPE_CODES = new Set(['type', 'unknown-key', 'required', 'range', 'format', 'enum', 'duration', 'size', 'address', 'one-of', 'name']);

const Ajv = (AjvModule as unknown as { default: typeof AjvModule }).default ?? AjvModule;

function files(): string[] {
  const fixtures = readdirSync(join(REPO_ROOT, 'test/fixtures/validate'))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => `test/fixtures/validate/${f}`);
  const examples = readdirSync(join(REPO_ROOT, 'config'))
    .filter((f) => f.endsWith('.yaml') && !f.includes('alert'))
    .map((f) => `config/${f}`);
  return [...fixtures, ...examples];
}

describe('JSON Schema', () => {
  test('config/gatewayctl.schema.json is what the validator spec generates (npm run schema)', () => {
    assert.equal(readFileSync(join(REPO_ROOT, 'config/gatewayctl.schema.json'), 'utf8'), jsonSchemaText());
  });

  const ajv = new (Ajv as any)({ allErrors: true, strict: false });
  const check = ajv.compile(generateJsonSchema());

  for (const file of files()) {
    test(`agrees with the validator on ${file}`, () => {
      const text = readFileSync(join(REPO_ROOT, file), 'utf8');
      let data: unknown;
      try {
        data = parse(text, { maxAliasCount: 100 });
      } catch {
        return; // not YAML the schema could see: the validator reports it (golden files)
      }
      const ours = validateConfigSource({ file, text });
      const errors = ours.diagnostics.filter((d) => d.severity === 'error');
      const schemaAccepts = check(data) as boolean;
      if (errors.length === 0) {
        assert.ok(schemaAccepts, `validator accepts, schema rejects: ${JSON.stringify(check.errors?.slice(0, 3))}`);
      } else if (errors.some((d) => SHAPE_CODES.has(d.code))) {
        assert.ok(!schemaAccepts, `validator finds shape errors (${errors.map((e) => e.message).join('; ')}) the schema accepts`);
      }
    });
  }
});
