/**
 * Generates the JSON Schema (draft-07, what yaml-language-server reads) from
 * the same spec the validator walks. config/gatewayctl.schema.json is this
 * output; a test fails when the two differ.
 */
import { DURATION_PATTERN, SIZE_PATTERN, type Spec } from './schema.js';
import { configSpec } from './schema.js';

type JsonSchema = Record<string, unknown>;

const ADDRESS_PATTERN = '^((\\[[0-9A-Fa-f:.]+\\])|[A-Za-z0-9.-]*):[0-9]{1,5}$|^[0-9]{1,5}$';

function convert(spec: Spec): JsonSchema {
  const doc: JsonSchema = {};
  if (spec.description) doc['description'] = spec.description;
  if (spec.default !== undefined) doc['default'] = spec.default;
  switch (spec.type) {
    case 'object': {
      const properties: Record<string, JsonSchema> = {};
      for (const [key, value] of Object.entries(spec.properties)) properties[key] = convert(value);
      Object.assign(doc, { type: 'object', properties, additionalProperties: false });
      if (spec.required?.length) doc['required'] = [...spec.required];
      if (spec.exactlyOne) doc['oneOf'] = spec.exactlyOne.map((key) => ({ required: [key] }));
      return doc;
    }
    case 'map':
      Object.assign(doc, { type: 'object', additionalProperties: convert(spec.values) });
      if (spec.keyPattern) doc['propertyNames'] = { pattern: spec.keyPattern };
      return doc;
    case 'array':
      Object.assign(doc, { type: 'array', items: convert(spec.items) });
      if (spec.minItems !== undefined) doc['minItems'] = spec.minItems;
      if (spec.maxItems !== undefined) doc['maxItems'] = spec.maxItems;
      return doc;
    case 'string':
      doc['type'] = 'string';
      if (spec.enum) doc['enum'] = [...spec.enum];
      if (spec.pattern) doc['pattern'] = spec.pattern;
      if (spec.minLength !== undefined) doc['minLength'] = spec.minLength;
      if (spec.maxLength !== undefined) doc['maxLength'] = spec.maxLength;
      return doc;
    case 'integer':
    case 'number':
      doc['type'] = spec.type;
      if (spec.minimum !== undefined) doc['minimum'] = spec.minimum;
      if (spec.maximum !== undefined) doc['maximum'] = spec.maximum;
      if (spec.type === 'number' && spec.exclusiveMinimum !== undefined) doc['exclusiveMinimum'] = spec.exclusiveMinimum;
      return doc;
    case 'boolean':
      doc['type'] = 'boolean';
      return doc;
    case 'duration':
      Object.assign(doc, { type: 'string', pattern: DURATION_PATTERN });
      return doc;
    case 'size':
      doc['oneOf'] = [
        { type: 'integer', minimum: spec.minimum ?? 0, ...(spec.maximum !== undefined ? { maximum: spec.maximum } : {}) },
        { type: 'string', pattern: SIZE_PATTERN },
      ];
      return doc;
    case 'address':
      doc['oneOf'] = [
        { type: 'integer', minimum: 0, maximum: 65535 },
        { type: 'string', pattern: ADDRESS_PATTERN },
      ];
      return doc;
    case 'union': {
      const variants = [spec.scalar, spec.number, spec.map, spec.seq].filter((v): v is Spec => v !== undefined).map(convert);
      doc['anyOf'] = variants;
      return doc;
    }
  }
}

export function generateJsonSchema(): JsonSchema {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'gatewayctl config',
    ...convert(configSpec),
  };
}

export function jsonSchemaText(): string {
  return JSON.stringify(generateJsonSchema(), null, 2) + '\n';
}
