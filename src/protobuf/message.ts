/**
 * A message decoded with its type from a descriptor set, as plain JSON:
 * fields by their .proto names, enums by value name, 64-bit integers and
 * bytes as strings (decimal, base64), every declared field present
 * (proto3 does not tell an absent field from its default, so neither do we).
 *
 * Fields the type does not declare (what a v2 added that the descriptor
 * set predates) would be dropped by protobufjs; they are kept, named by
 * field number and decoded as wire.ts does, next to the named ones.
 * Bounded: the wire is walked first within the step and depth limits, and
 * only then handed to protobufjs.
 */
import type protobuf from 'protobufjs';
import { PROTOBUF } from './descriptors.js';
import { addField, markMessage, splitFields, WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT, WireDecoder, type WireLimits, type WireObject } from './wire.js';

const CONVERSION: protobuf.IConversionOptions = {
  enums: String,
  longs: String,
  bytes: String,
  defaults: true,
  arrays: true,
  objects: true,
  json: true,
};

const SCALAR_WIRE: Readonly<Record<string, number>> = {
  int32: WIRE_VARINT,
  int64: WIRE_VARINT,
  uint32: WIRE_VARINT,
  uint64: WIRE_VARINT,
  sint32: WIRE_VARINT,
  sint64: WIRE_VARINT,
  bool: WIRE_VARINT,
  fixed64: WIRE_FIXED64,
  sfixed64: WIRE_FIXED64,
  double: WIRE_FIXED64,
  fixed32: WIRE_FIXED32,
  sfixed32: WIRE_FIXED32,
  float: WIRE_FIXED32,
};

/** Types exist only once PROTOBUF is loaded: the caller decodes with one. */
const isMessageType = (t: protobuf.ReflectionObject | null): t is protobuf.Type => t instanceof PROTOBUF.get().Type;

/** Whether a declared field may arrive with this wire type (repeated scalars packed or not). */
function wireTypeFits(field: protobuf.Field, wireType: number): boolean {
  if (field.map || isMessageType(field.resolvedType)) return wireType === WIRE_LEN;
  const scalar = field.resolvedType instanceof PROTOBUF.get().Enum ? WIRE_VARINT : SCALAR_WIRE[field.type];
  if (scalar === undefined) return wireType === WIRE_LEN; // string, bytes
  return wireType === scalar || (field.repeated && wireType === WIRE_LEN);
}

interface Unknown {
  /** Where in the decoded object: field names and repeated indices. */
  readonly at: readonly (string | number)[];
  readonly number: number;
  readonly value: WireObject[string];
}

class Scan {
  readonly unknown: Unknown[] = [];
  readonly wire: WireDecoder;
  readonly budget: { steps: number };
  /** Declared fields the decoded object will carry (defaults included). */
  cost = 0;
  tooDeep = false;
  /** A declared field that came with another wire type: the type does not describe these bytes. */
  mismatch: string | undefined;

  get used(): number {
    return Math.min(this.limits.maxSteps, this.cost + this.wire.used);
  }

  constructor(private readonly limits: WireLimits) {
    this.wire = new WireDecoder(limits);
    this.budget = { steps: limits.maxSteps };
  }

  /** False when the bytes are not a message of this shape (protobufjs would throw or guess). */
  walk(type: protobuf.Type, buf: Uint8Array, at: (string | number)[], depth: number): boolean {
    if (depth >= this.limits.maxDepth) {
      this.tooDeep = true;
      return false;
    }
    const fields = splitFields(buf, this.budget);
    if (!fields) return false;
    this.cost += type.fieldsArray.length + fields.length;
    if (this.cost > this.limits.maxSteps) return false;
    const occurrences = new Map<number, number>();
    for (const f of fields) {
      const field = type.fieldsById[f.number];
      if (!field) {
        this.unknown.push({ at, number: f.number, value: this.wire.value(buf, f, depth) });
        continue;
      }
      if (!wireTypeFits(field, f.wireType)) {
        this.mismatch = `field ${field.name} (${f.number}) came with wire type ${f.wireType}`;
        return false;
      }
      if (field.map || !isMessageType(field.resolvedType)) continue;
      const seen = occurrences.get(f.number) ?? 0;
      occurrences.set(f.number, seen + 1);
      // A repeated message's k-th occurrence is element k; a singular one merges, so its unknowns sit under it once.
      const below = field.repeated ? [...at, field.name, seen] : [...at, field.name];
      if (!this.walk(field.resolvedType, buf.subarray(f.start, f.end), below, depth + 1)) return false;
    }
    return true;
  }
}

export interface TypedResult {
  /** undefined when the bytes do not decode as this type. */
  readonly value: Record<string, unknown> | undefined;
  readonly problem?: string;
  /** Steps of the budget spent. */
  readonly used: number;
}

function place(root: Record<string, unknown>, u: Unknown): void {
  let target: unknown = root;
  for (const step of u.at) {
    if (target === null || typeof target !== 'object') return;
    target = (target as Record<string | number, unknown>)[step];
  }
  if (target !== null && typeof target === 'object' && !Array.isArray(target)) addField(target as WireObject, String(u.number), u.value);
}

/** Marks every message object in a decoded value (map fields stay maps; their message values are marked). */
function markTyped(type: protobuf.Type, value: Record<string, unknown>): void {
  markMessage(value);
  for (const field of type.fieldsArray) {
    if (!isMessageType(field.resolvedType)) continue;
    const v = value[field.name];
    if (v === null || typeof v !== 'object') continue;
    const items = Array.isArray(v) ? v : field.map ? Object.values(v) : [v];
    for (const item of items) if (item !== null && typeof item === 'object') markTyped(field.resolvedType, item as Record<string, unknown>);
  }
}

/** Decodes `buf` as `type`. Never throws. */
export function decodeTyped(type: protobuf.Type, buf: Uint8Array, limits: WireLimits): TypedResult {
  const scan = new Scan(limits);
  if (!scan.walk(type, buf, [], 0)) {
    const why =
      scan.mismatch ?? (scan.tooDeep ? `nested deeper than ${limits.maxDepth}` : scan.cost > limits.maxSteps || scan.budget.steps < 0 ? 'too large to decode' : 'malformed');
    return { value: undefined, problem: `does not decode as ${type.fullName.replace(/^\./, '')}: ${why}`, used: scan.used };
  }
  let value: Record<string, unknown>;
  try {
    value = type.toObject(type.decode(buf), CONVERSION);
  } catch (err) {
    return { value: undefined, problem: `does not decode as ${type.fullName.replace(/^\./, '')}: ${(err as Error).message}`, used: scan.used };
  }
  markTyped(type, value);
  for (const u of scan.unknown) place(value, u);
  return { value, used: scan.used };
}
