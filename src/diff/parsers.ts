/**
 * Which of the comparing thread's lazily loaded libraries (lazy-module.ts)
 * a pair needs before it can be compared: parse5 for an HTML body,
 * fast-xml-parser for an XML one (the answers' and the dependency calls'),
 * protobufjs for a gRPC call whose route names a descriptor set. The
 * engine awaits them between slices; a JSON-only route never loads any.
 */
import type { LazyModule } from '../lazy-module.js';
import { PROTOBUF } from '../protobuf/descriptors.js';
import { isProtobufGrpc } from './grpc.js';
import { PARSE5 } from './html.js';
import { markupParserFor } from './lift.js';
import type { MirroredPair } from './pair.js';
import { XML_PARSER } from './xml.js';

const ALL: readonly LazyModule<unknown>[] = [PARSE5, XML_PARSER, PROTOBUF];

/** The libraries this pair needs that are not loaded yet (nor failed to load): usually none. */
export function unloadedParsersFor(pair: MirroredPair): LazyModule<unknown>[] {
  if (ALL.every((m) => m.settled)) return [];
  const needed = new Set<LazyModule<unknown>>();
  const add = (headers: MirroredPair['primary']['headers'] | undefined) => {
    const parser = headers && markupParserFor(headers);
    if (parser && !parser.settled) needed.add(parser);
  };
  add(pair.primary.headers);
  for (const side of [...pair.shadows, ...(pair.baseline ? [pair.baseline] : [])]) add(side.result.response?.headers);
  for (const call of [...(pair.calls?.live ?? []), ...(pair.calls?.dark ?? []), ...(pair.calls?.baseline ?? [])]) add(call.headers);
  if (!PROTOBUF.settled && pair.diff.protoDescriptors !== undefined && isProtobufGrpc(pair.primary.headers)) needed.add(PROTOBUF);
  return [...needed];
}

/** Every one of them: for code that lifts or compares directly, outside the engine (tests, benches). */
export async function loadAllParsers(): Promise<void> {
  await Promise.all(ALL.map((m) => m.load()));
}
