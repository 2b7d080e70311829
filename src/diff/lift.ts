/**
 * Lifting a captured body into something comparable: JSON (a parsed tree),
 * text, or binary (length and hash). Nothing is dropped: a body that claims
 * to be JSON but does not parse is still compared, as text, with a note.
 */
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { decodeBody } from './decode.js';
import { parseJsonBytes, type Layout } from './json-bytes.js';
import { isProtobufGrpc, liftGrpc, type GrpcContext } from './grpc.js';
import type { LazyModule } from '../lazy-module.js';
import { PARSE5, parseHtml, type HtmlNode } from './html.js';
import { parseXml, XML_PARSER } from './xml.js';

export type Lifted =
  | { readonly format: 'empty'; readonly note?: string }
  /**
   * `layout`: how a large body was split (json-bytes.ts), for the other side
   * of the pair to share what is the same. `value` may hold `Unparsed`
   * children (lifted with `deferChildren`, or shared from such a body): read
   * it through json-bytes.ts's `plain` or `resolve`.
   */
  | { readonly format: 'json'; readonly value: unknown; readonly note?: string; readonly layout?: Layout }
  | { readonly format: 'text'; readonly text: string; readonly note?: string }
  /** HTML or XML as an element tree. */
  | { readonly format: 'html'; readonly root: HtmlNode; readonly text: string; readonly note?: string }
  | { readonly format: 'binary'; readonly bytes: number; readonly sha256: string; readonly note?: string };

export interface LiftInput {
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly truncated: boolean;
}

const JSON_TYPE = /^application\/(?:[\w.+-]*\+)?json\b|^[\w.+-]+\/[\w.+-]*\+json\b/i;
/** Larger HTML or XML is compared as text: parsing it would hold the event loop too long for one pair. */
export const MAX_HTML_TREE_BYTES = 256 * 1024;
const XML_TYPE = /^(?:application\/xml|text\/xml|[\w.+-]+\/[\w.+-]*\+xml)\b/i;
const HTML_TYPE = /^(?:text\/html|application\/xhtml\+xml)\b/i;
const TEXT_TYPE = /^(?:text\/|application\/(?:xml|javascript|ecmascript|x-www-form-urlencoded|x-ndjson|graphql)\b|[\w.+-]+\/[\w.+-]*\+xml\b)/i;


/** The parser lifting a body with these headers may need, loaded or not; comparison loads it first (diff/parsers.ts). */
export function markupParserFor(headers: IncomingHttpHeaders): LazyModule<unknown> | undefined {
  const type = contentType(headers);
  if (HTML_TYPE.test(type)) return PARSE5;
  return XML_TYPE.test(type) ? XML_PARSER : undefined;
}

function contentType(headers: IncomingHttpHeaders): string {
  const value = headers['content-type'];
  return (Array.isArray(value) ? value[0] : value)?.trim() ?? '';
}

const isText = (body: Buffer) => isUtf8(body) && !body.includes(0);

function firstSignificant(body: Buffer): number {
  for (let i = 0; i < body.length && i < 64; i++) {
    const c = body[i]!;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09 && c !== 0xef && c !== 0xbb && c !== 0xbf) return c;
  }
  return -1;
}

export function binaryOf(body: Buffer, note?: string): Lifted {
  const sha256 = createHash('sha256').update(body).digest('hex');
  return note === undefined ? { format: 'binary', bytes: body.length, sha256 } : { format: 'binary', bytes: body.length, sha256, note };
}

/** What a body past its capture limit is compared by. */
export const PAST_LIMIT_NOTE = 'past diff.maxBodyBytes: compared by length and SHA-256 of the whole body, not parsed';

/**
 * A body as its length and a SHA-256 of all its bytes (as received, still
 * encoded). For answers past the capture limit, whose prefix must never be
 * parsed as if it were the body; the other side of such a pair is taken
 * the same way, so the two are comparable.
 */
export function wholeBody(input: { readonly body: Buffer; readonly truncated: boolean; readonly bodyBytes: number; readonly sha256?: string | undefined }): Lifted {
  if (!input.truncated) return binaryOf(input.body);
  return { format: 'binary', bytes: input.bodyBytes, sha256: input.sha256 ?? 'unknown', note: PAST_LIMIT_NOTE };
}

/**
 * Decodes, then lifts. `maxDecodedBytes` bounds the decoded size, `maxNodes` an HTML tree.
 * gRPC bodies (given the call's context) become their decoded messages.
 * With `reference` (the other side of the pair, lifted), the parts of a large
 * JSON body that are byte for byte the reference's share its values. With
 * `deferChildren`, a large JSON body's small parts are checked, not parsed,
 * until a comparison needs them (the side others will share from). Never throws.
 */
export function lift(input: LiftInput, maxDecodedBytes: number, maxNodes = 50_000, grpc?: GrpcContext, reference?: Lifted, deferChildren = false): Lifted {
  if (grpc && isProtobufGrpc(input.headers)) return liftGrpc(input, grpc, { maxDecodedBytes, maxNodes });
  const decoded = decodeBody(input.body, input.headers, maxDecodedBytes);
  const body = decoded.body;
  if (decoded.error !== undefined) return binaryOf(body, decoded.error);
  if (body.length === 0) return { format: 'empty' };
  const type = contentType(input.headers);
  const declaredJson = JSON_TYPE.test(type);
  const first = firstSignificant(body);
  const looksJson = first === 0x7b /* { */ || first === 0x5b; /* [ */
  // Decoded only when needed: a JSON body is parsed from its bytes (json-bytes.ts says why).
  const utf8 = isText(body);
  let decodedText: string | undefined;
  const text = () => (decodedText ??= body.toString('utf8'));
  if (declaredJson || (looksJson && (type === '' || TEXT_TYPE.test(type) || /octet-stream/i.test(type)))) {
    if (utf8) {
      try {
        return { format: 'json', ...parseJsonBytes(body, reference?.format === 'json' ? reference : undefined, deferChildren) };
      } catch (err) {
        if (declaredJson) {
          const why = input.truncated ? 'cut at diff.maxBodyBytes' : (err as Error).message;
          return { format: 'text', text: text(), note: `not valid JSON (${why})` };
        }
      }
    } else if (declaredJson) {
      return binaryOf(body, 'declared JSON, but not UTF-8 text');
    }
  }
  if (!utf8) return binaryOf(body);
  if (HTML_TYPE.test(type) && body.length <= MAX_HTML_TREE_BYTES) {
    const { root, limited } = parseHtml(text(), maxNodes);
    return limited ? { format: 'html', root, text: text(), note: `HTML compared up to ${maxNodes} elements` } : { format: 'html', root, text: text() };
  }
  if (XML_TYPE.test(type) && !HTML_TYPE.test(type) && body.length <= MAX_HTML_TREE_BYTES) {
    const xml = parseXml(text(), maxNodes);
    if (xml) return xml.limited ? { format: 'html', root: xml.root, text: text(), note: `XML compared up to ${maxNodes} elements` } : { format: 'html', root: xml.root, text: text() };
    return { format: 'text', text: text(), note: 'not well-formed XML' };
  }
  return { format: 'text', text: text() };
}
