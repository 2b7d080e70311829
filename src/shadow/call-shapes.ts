/**
 * Whether a gRPC call streams, as the route's descriptor set
 * (diff.protoDescriptors) declares its method: known before the call's
 * first byte is copied. Read without protobufjs (protobuf/outline.ts)
 * and reread when the file changes. Undefined when the route has no set,
 * the set cannot be read, or it lacks the method: the call's shape is then
 * found as it flows (service.ts).
 */
import type { CompiledRoute } from '../config/compile.js';
import { readDescriptorBytes } from '../config/descriptor-bytes.js';
import { StampedFiles } from '../config/stamped-files.js';
import { readDescriptorOutline, type CallShape } from '../protobuf/outline.js';

export class CallShapes {
  private readonly sets = new StampedFiles((path) => {
    const read = readDescriptorBytes(path);
    return 'bytes' in read ? readDescriptorOutline(read.bytes)?.methods : undefined;
  });

  /** `path`: the request target ("/pkg.Service/Method", a query is ignored). */
  of(route: CompiledRoute, path: string): CallShape | undefined {
    const file = route.diff.protoDescriptors;
    if (file === undefined) return undefined;
    return this.sets.get(file)?.get(path.split('?')[0]!);
  }
}
