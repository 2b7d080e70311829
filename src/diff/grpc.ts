/**
 * gRPC answers, compared field by field. The body's length-prefixed
 * messages are decoded (decompressed per grpc-encoding, bounded) into JSON:
 * with the route's descriptor set (diff.protoDescriptors) by the method the
 * request path names, fields by name (`/items/0/name`); without one, or
 * for a method the set lacks, by field number (`/1/3`). One message is
 * the body itself; several (streaming) are an array, one element per
 * message (`/2/items/0/name`). The JSON is then compared like any JSON
 * body, so ignorePaths, tolerance, unordered and the learned noise apply.
 *
 * Status and trailers are metadata: headers and trailers together
 * (a Trailers-Only answer carries grpc-status in its headers), compared
 * like headers; a grpc-status change is the pair's status difference.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { readFrames } from '../protobuf/frames.js';
import type { ProtoSchema } from '../protobuf/descriptors.js';
import { decodeTyped } from '../protobuf/message.js';
import { decodeWire, type WireLimits } from '../protobuf/wire.js';
import { compareBodies, type RawDifference, type ValueRules, type WalkLimits } from './compare.js';
import { decodeBody } from './decode.js';
import { compareHeaders } from './headers.js';
import type { Lifted } from './lift.js';
import type { IgnoreRules } from './paths.js';

/** What comparison knows of the call: its method path and the route's descriptor set. */
export interface GrpcContext {
  /** "/pkg.Service/Method" */
  readonly method: string;
  readonly schema?: ProtoSchema;
  /** Why the route's descriptor set could not be used (it is then decoded by field number). */
  readonly schemaProblem?: string;
}

/** A gRPC answer as the h2 path captures it. */
export interface GrpcAnswer {
  readonly headers: IncomingHttpHeaders;
  /** The trailers (grpc-status, grpc-message, ...); absent for a Trailers-Only answer or a reset stream. */
  readonly trailers?: IncomingHttpHeaders;
  /** The DATA bytes: length-prefixed messages, at most the capture limit. */
  readonly body: Buffer;
  /** The capture stopped at its limit. */
  readonly truncated: boolean;
}

const GRPC_TYPE = /^application\/grpc(?:[+;]|$)/i;

/**
 * application/grpc, application/grpc+proto: the answers this module decodes as
 * protobuf. Not routing's isGrpc, which takes every gRPC call (+json too).
 * grpc-web frames differently and is not this.
 */
export function isProtobufGrpc(headers: IncomingHttpHeaders): boolean {
  const value = headers['content-type'];
  const type = (Array.isArray(value) ? value[0] : value)?.trim() ?? '';
  return GRPC_TYPE.test(type) && !/^application\/grpc\+json/i.test(type);
}

/** Messages read per answer: a stream's first ones are compared, the rest counted out. */
export const MAX_GRPC_MESSAGES = 1000;
/** Protobuf's own default recursion limit. */
const MAX_MESSAGE_DEPTH = 100;

const STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** "5 NOT_FOUND" for "5". */
export function describeGrpcStatus(code: string | undefined): string | undefined {
  if (code === undefined) return undefined;
  const name = STATUS_NAMES[Number(code)];
  return name && /^\d+$/.test(code) ? `${code} ${name}` : code;
}

/** Headers and trailers as one set of metadata, trailers last (they win). */
export function grpcMetadata(answer: { readonly headers: IncomingHttpHeaders; readonly trailers?: IncomingHttpHeaders }): IncomingHttpHeaders {
  if (!answer.trailers) return answer.headers;
  const out: IncomingHttpHeaders = { ...answer.headers };
  for (const [k, v] of Object.entries(answer.trailers)) if (v !== undefined) out[k] = v;
  return out;
}

function percentDecoded(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

export type MetadataDifference = RawDifference & { readonly kind: 'status' | 'header' };

/**
 * Metadata differences, like headers (built-in and route ignores apply):
 * grpc-status as the status ("0 OK" → "5 NOT_FOUND"), grpc-message decoded.
 */
export function compareGrpcMetadata(a: GrpcAnswer | { headers: IncomingHttpHeaders; trailers?: IncomingHttpHeaders }, b: typeof a, ignored: ReadonlySet<string>): MetadataDifference[] {
  const out: MetadataDifference[] = [];
  for (const d of compareHeaders(grpcMetadata(a), grpcMetadata(b), ignored)) {
    if (d.pointer === 'grpc-status') {
      out.push({ ...d, kind: 'status', primary: describeGrpcStatus(d.primary as string | undefined), shadow: describeGrpcStatus(d.shadow as string | undefined) });
    } else if (d.pointer === 'grpc-message') {
      out.push({ ...d, kind: 'header', primary: percentDecoded(d.primary), shadow: percentDecoded(d.shadow) });
    } else out.push({ ...d, kind: 'header' });
  }
  return out;
}

export interface GrpcLiftLimits {
  /** Decoded bytes of all messages together. */
  readonly maxDecodedBytes: number;
  readonly maxNodes: number;
}

/** Decodes one framed body (a request's or an answer's) into JSON. Never throws. */
export function liftGrpc(
  answer: { readonly headers: IncomingHttpHeaders; readonly body: Buffer; readonly truncated: boolean },
  context: GrpcContext,
  limits: GrpcLiftLimits,
  direction: 'request' | 'response' = 'response',
): Lifted {
  const notes: string[] = [];
  const framing = readFrames(answer.body, { maxMessages: MAX_GRPC_MESSAGES, maxMessageBytes: limits.maxDecodedBytes });
  if (framing.problem) notes.push(answer.truncated && framing.problem.includes('cut short') ? `${framing.problem} (cut at diff.maxBodyBytes)` : framing.problem);
  const method = context.schema?.method(context.method);
  const type = method ? (direction === 'request' ? method.request : method.response) : undefined;
  const streaming = method ? (direction === 'request' ? method.requestStream : method.responseStream) : false;
  if (context.schemaProblem) notes.push(`descriptor set not used: ${context.schemaProblem}; fields by number`);
  else if (context.schema && !method) notes.push(`${context.method} is not in the descriptor set; fields by number`);
  // One budget for the whole answer: a stream of many small messages costs what one large one does.
  let steps = limits.maxNodes * 4;
  const wireLimits = (): WireLimits => ({ maxSteps: steps, maxDepth: MAX_MESSAGE_DEPTH });
  const encoding = String(answer.headers['grpc-encoding'] ?? 'identity');
  let budget = limits.maxDecodedBytes;
  const messages: unknown[] = [];
  let limited = false;
  let problem: string | undefined;
  for (const f of framing.frames) {
    let data = f.data;
    if (f.compressed) {
      const decoded = decodeBody(data, { 'content-encoding': encoding }, budget);
      if (decoded.error !== undefined) {
        problem ??= `message ${messages.length + 1}: ${decoded.error}`;
        messages.push(data.toString('base64'));
        continue;
      }
      data = decoded.body;
    }
    budget -= data.length;
    if (budget < 0 || steps <= 0) {
      notes.push(budget < 0 ? `messages beyond ${limits.maxDecodedBytes} decoded bytes not compared` : 'messages beyond the decoding budget not compared');
      break;
    }
    if (type) {
      const typed = decodeTyped(type, data, wireLimits());
      steps -= typed.used;
      if (typed.value !== undefined) {
        messages.push(typed.value);
        continue;
      }
      problem ??= `message ${messages.length + 1} ${typed.problem}; fields by number`;
    }
    const generic = decodeWire(data, wireLimits());
    steps -= generic.used;
    limited ||= generic.limited;
    if (generic.value !== undefined) messages.push(generic.value);
    else {
      problem ??= `message ${messages.length + 1} is not a protobuf message; compared as bytes`;
      messages.push(data.toString('base64'));
    }
  }
  if (problem) notes.push(problem);
  if (limited) notes.push('some nested values left as bytes (decoding limits)');
  const what = type ? `decoded as ${type.fullName.replace(/^\./, '')}` : 'fields by number';
  const note = `gRPC, ${messages.length} message${messages.length === 1 ? '' : 's'}, ${what}` + (notes.length ? `; ${notes.join('; ')}` : '');
  if (messages.length === 0) return { format: 'empty', note };
  return { format: 'json', value: streaming || messages.length !== 1 ? messages : messages[0], note };
}

/**
 * Two answers of which one or both passed the capture limit: only the
 * messages both sides captured whole are compared one by one (a message
 * missing on one side may only lie past its cut). What lies beyond is for
 * the past-limit rule: the whole bodies' length and SHA-256. Undefined when
 * either side is not a list of decoded messages.
 */
export function commonMessages(a: Lifted, b: Lifted): [Lifted, Lifted] | undefined {
  const listA = messagesOf(a);
  const listB = messagesOf(b);
  if (!listA || !listB) return undefined;
  const common = Math.min(listA.length, listB.length);
  const trim = (l: Lifted, list: unknown[]): Lifted => {
    const note = `${l.note ? `${l.note}; ` : ''}past the capture limit: messages 1-${common} compared, the rest by length and SHA-256 of the whole body`;
    return common === 0 ? { format: 'empty', note } : { format: 'json', value: list.slice(0, common), note };
  };
  return [trim(a, listA), trim(b, listB)];
}

function messagesOf(l: Lifted): unknown[] | undefined {
  if (l.format === 'empty') return [];
  if (l.format !== 'json') return undefined;
  return Array.isArray(l.value) ? l.value : [l.value];
}

export interface GrpcCompareOptions extends WalkLimits {
  readonly context: GrpcContext;
  /** Metadata names not compared (ignoredHeaders(diff.ignoreHeaders)). */
  readonly ignoredHeaders: ReadonlySet<string>;
  readonly rules: IgnoreRules;
  readonly values: ValueRules;
  readonly maxDecodedBytes: number;
}

export interface GrpcComparison {
  readonly differences: (RawDifference & { readonly kind: 'status' | 'header' | 'body' })[];
  readonly limited?: 'nodes' | 'depth';
  readonly primary: Lifted;
  readonly shadow: Lifted;
}

/**
 * Two gRPC answers to the same call: metadata (status, trailers, headers)
 * and messages. Pure: plain data in, differences out.
 */
export function compareGrpcAnswers(primary: GrpcAnswer, shadow: GrpcAnswer, options: GrpcCompareOptions): GrpcComparison {
  const differences: GrpcComparison['differences'] = compareGrpcMetadata(primary, shadow, options.ignoredHeaders);
  const limits = { maxDecodedBytes: options.maxDecodedBytes, maxNodes: options.maxNodes };
  const a = liftGrpc(primary, options.context, limits);
  const b = liftGrpc(shadow, options.context, limits);
  const body = compareBodies(a, b, options.rules, options, options.values);
  for (const d of body.differences) differences.push({ ...d, kind: 'body' });
  return body.limited ? { differences, limited: body.limited, primary: a, shadow: b } : { differences, primary: a, shadow: b };
}
