/**
 * Which of the comparing thread's lazily loaded libraries (lazy-module.ts)
 * a pair needs before it can be compared: parse5 for an HTML body,
 * fast-xml-parser for an XML one (the answers' and the dependency calls'),
 * protobufjs for a gRPC call whose route names a descriptor set. The
 * engine awaits them between slices; a JSON-only route never loads any.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { LazyModule } from '../lazy-module.js';
import { PROTOBUF } from '../protobuf/descriptors.js';
import { isProtobufGrpc } from './grpc.js';
import { PARSE5 } from './html.js';
import { markupParserFor } from './lift.js';
import type { MirroredPair } from './pair.js';
import { XML_PARSER } from './xml.js';

const ALL: readonly LazyModule<unknown>[] = [PARSE5, XML_PARSER, PROTOBUF];
const NONE: readonly LazyModule<unknown>[] = [];

/** Adds the markup parser a body with these headers needs, unless it is settled or already there. */
function addMarkupParser(needed: LazyModule<unknown>[], headers: IncomingHttpHeaders | undefined): void {
  const parser = headers && markupParserFor(headers);
  if (parser && !parser.settled && !needed.includes(parser)) needed.push(parser);
}

/**
 * The libraries this pair needs that are not loaded yet (nor failed to
 * load): usually none. Called once per pair, and on a JSON-only route the
 * libraries are never settled, so it walks the bodies without copying lists.
 */
export function unloadedParsersFor(pair: MirroredPair): readonly LazyModule<unknown>[] {
  if (PARSE5.settled && XML_PARSER.settled && PROTOBUF.settled) return NONE;
  const needed: LazyModule<unknown>[] = [];
  addMarkupParser(needed, pair.primary.headers);
  for (const side of pair.shadows) addMarkupParser(needed, side.result.response?.headers);
  addMarkupParser(needed, pair.baseline?.result.response?.headers);
  if (pair.calls) {
    for (const call of pair.calls.live) addMarkupParser(needed, call.headers);
    for (const call of pair.calls.dark) addMarkupParser(needed, call.headers);
    for (const call of pair.calls.baseline) addMarkupParser(needed, call.headers);
  }
  if (!PROTOBUF.settled && pair.diff.protoDescriptors !== undefined && isProtobufGrpc(pair.primary.headers)) needed.push(PROTOBUF);
  return needed;
}

/** Every one of them: for code that lifts or compares directly, outside the engine (tests, benches). */
export async function loadAllParsers(): Promise<void> {
  await Promise.all(ALL.map((m) => m.load()));
}
