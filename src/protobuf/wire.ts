/**
 * The protobuf wire format read without a schema, the way
 * `protoc --decode_raw` does: each message becomes an object keyed by
 * field number ("1", "3"), a field seen more than once an array in wire
 * order. What a value means has to be guessed:
 *
 *   varint           an integer (above 2^63 read as a negative int64)
 *   fixed64/fixed32  a double/float when it reads as a plausible one, else an integer
 *   length-delimited printable UTF-8 text, else a nested message when it parses
 *                    as one completely, else UTF-8 text, else base64 bytes
 *
 * Bounded: a step budget shared by the whole decode and a depth limit; when
 * either runs out, deeper length-delimited values stay bytes and the
 * result says `limited`.
 */
import { isUtf8 } from 'node:buffer';

export interface WireLimits {
  /** Fields read in all, across every nested attempt. */
  readonly maxSteps: number;
  readonly maxDepth: number;
}

export type WireValue = number | string | WireObject | WireValue[];
export interface WireObject {
  [field: string]: WireValue;
}

/**
 * Marks objects that are decoded messages: their keys are fields (names or
 * numbers), never data, so a diff never mistakes one for a map.
 */
const MESSAGE = Symbol('protobuf message');

export function markMessage<T extends object>(value: T): T {
  Object.defineProperty(value, MESSAGE, { value: true, enumerable: false });
  return value;
}

export function isMessage(value: object): boolean {
  return (value as { [MESSAGE]?: true })[MESSAGE] === true;
}

/** Largest field number protobuf allows. */
export const MAX_FIELD_NUMBER = 2 ** 29 - 1;

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

/** One field's tag and where its value lies in the buffer. */
export interface WireField {
  readonly number: number;
  readonly wireType: number;
  /** Value bytes: [start, end) (for varints, the varint's bytes). */
  readonly start: number;
  readonly end: number;
}

/** Reads a varint at `pos`; undefined when it runs past the end or over 10 bytes. */
export function readVarint(buf: Uint8Array, pos: number): { value: bigint; end: number } | undefined {
  let value = 0n;
  let shift = 0n;
  for (let i = pos; i < buf.length && i < pos + 10; i++) {
    const b = buf[i]!;
    value |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return { value: BigInt.asUintN(64, value), end: i + 1 };
    shift += 7n;
  }
  return undefined;
}

/** Reads a small varint (tags, lengths) as a number; undefined when malformed or above 2^32. */
function readSmall(buf: Uint8Array, pos: number): { value: number; end: number } | undefined {
  let value = 0;
  let mul = 1;
  for (let i = pos; i < buf.length && i < pos + 5; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return value > 0xffffffff ? undefined : { value, end: i + 1 };
    mul *= 128;
  }
  return undefined;
}

/**
 * The fields of one message, in wire order; undefined when the bytes are
 * not a well-formed message (bad tag, field 0, groups, overrun).
 */
export function splitFields(buf: Uint8Array, budget: { steps: number }): WireField[] | undefined {
  const fields: WireField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (--budget.steps < 0) return undefined;
    const tag = readSmall(buf, pos);
    if (!tag) return undefined;
    const number = Math.floor(tag.value / 8);
    const wireType = tag.value & 7;
    if (number < 1 || number > MAX_FIELD_NUMBER) return undefined;
    pos = tag.end;
    let start = pos;
    let end: number;
    switch (wireType) {
      case WIRE_VARINT: {
        const v = readVarint(buf, pos);
        if (!v) return undefined;
        end = v.end;
        break;
      }
      case WIRE_FIXED64:
        end = pos + 8;
        break;
      case WIRE_FIXED32:
        end = pos + 4;
        break;
      case WIRE_LEN: {
        const len = readSmall(buf, pos);
        if (!len) return undefined;
        start = len.end;
        end = start + len.value;
        break;
      }
      default:
        // Groups (3, 4) are long deprecated; anything else is not protobuf.
        return undefined;
    }
    if (end > buf.length) return undefined;
    fields.push({ number, wireType, start, end });
    pos = end;
  }
  return fields;
}

function integer(value: bigint): number | string {
  const signed = value >= 1n << 63n ? BigInt.asIntN(64, value) : value;
  return signed >= BigInt(Number.MIN_SAFE_INTEGER) && signed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(signed) : signed.toString();
}

const view = (buf: Uint8Array) => new DataView(buf.buffer, buf.byteOffset, buf.byteLength);

/** A double when its magnitude is one a program would store, else the integer. */
function fixed64(buf: Uint8Array, at: number): number | string {
  const dv = view(buf);
  const bits = dv.getBigUint64(at, true);
  if (bits === 0n) return 0;
  const d = dv.getFloat64(at, true);
  const abs = Math.abs(d);
  return Number.isFinite(d) && abs >= 1e-100 && abs <= 1e100 ? d : integer(bits);
}

function fixed32(buf: Uint8Array, at: number): number {
  const dv = view(buf);
  const bits = dv.getUint32(at, true);
  if (bits === 0) return 0;
  const f = dv.getFloat32(at, true);
  const abs = Math.abs(f);
  // Seven significant digits: what a float holds, without the binary tail.
  return Number.isFinite(f) && abs >= 1e-20 && abs <= 1e20 ? Number(f.toPrecision(7)) : bits;
}

/** UTF-8 with no control characters but tab and line breaks. */
function printable(bytes: Uint8Array): boolean {
  for (const b of bytes) if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f) return false;
  return isUtf8(bytes);
}

const text = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

export class WireDecoder {
  private readonly budget: { steps: number };
  limited = false;

  /** Steps spent so far. */
  get used(): number {
    return this.limits.maxSteps - Math.max(0, this.budget.steps);
  }

  constructor(private readonly limits: WireLimits) {
    this.budget = { steps: limits.maxSteps };
  }

  /** A whole message, or undefined when the bytes are not one. */
  message(buf: Uint8Array, depth = 0): WireObject | undefined {
    const fields = splitFields(buf, this.budget);
    if (!fields) {
      if (this.budget.steps < 0) this.limited = true;
      return undefined;
    }
    const out: WireObject = markMessage({});
    for (const f of fields) addField(out, String(f.number), this.value(buf, f, depth));
    return out;
  }

  /** One field's value, guessed from its wire type. */
  value(buf: Uint8Array, f: WireField, depth: number): WireValue {
    switch (f.wireType) {
      case WIRE_VARINT:
        return integer(readVarint(buf, f.start)!.value);
      case WIRE_FIXED64:
        return fixed64(buf, f.start);
      case WIRE_FIXED32:
        return fixed32(buf, f.start);
      default:
        return this.delimited(buf.subarray(f.start, f.end), depth);
    }
  }

  private delimited(bytes: Uint8Array, depth: number): WireValue {
    if (bytes.length === 0) return '';
    if (printable(bytes)) return text(bytes);
    if (depth + 1 >= this.limits.maxDepth || this.budget.steps <= 0) {
      this.limited = true;
    } else {
      const nested = this.message(bytes, depth + 1);
      if (nested && Object.keys(nested).length > 0) return nested;
    }
    return isUtf8(bytes) ? text(bytes) : base64(bytes);
  }
}

/** A field seen again becomes an array of its values, in wire order (single values are never arrays). */
export function addField(target: WireObject, key: string, value: WireValue): void {
  const prior = target[key];
  if (prior === undefined) target[key] = value;
  else if (Array.isArray(prior)) prior.push(value);
  else target[key] = [prior, value];
}

/** Decodes a message without a schema. Never throws. */
export function decodeWire(buf: Uint8Array, limits: WireLimits): { value: WireObject | undefined; limited: boolean; used: number } {
  const decoder = new WireDecoder(limits);
  const value = decoder.message(buf);
  return { value, limited: decoder.limited, used: decoder.used };
}
