/**
 * Which gRPC methods stream, read straight off a descriptor set's wire
 * format. The serving thread decides whether to mirror a call before its
 * first byte leaves, and must not load protobufjs (the comparing threads
 * do) for four fields:
 *
 *   FileDescriptorSet      1 file (repeated FileDescriptorProto)
 *   FileDescriptorProto    2 package, 6 service (repeated)
 *   ServiceDescriptorProto 1 name, 2 method (repeated)
 *   MethodDescriptorProto  1 name, 5 client_streaming, 6 server_streaming
 */
import { splitFields, WIRE_LEN, WIRE_VARINT, type WireField } from './wire.js';

export interface CallShape {
  /** The client sends a stream of messages (client or bidi streaming). */
  readonly requestStream: boolean;
  /** The server answers with a stream of messages (server or bidi streaming). */
  readonly responseStream: boolean;
}

/** Every method of the set by its request path ("/pkg.Service/Method"); undefined when the bytes are not a descriptor set. */
export function readCallShapes(bytes: Uint8Array): ReadonlyMap<string, CallShape> | undefined {
  const budget = { steps: 2 * bytes.length + 1024 };
  const fields = (buf: Uint8Array) => splitFields(buf, budget);
  const shapes = new Map<string, CallShape>();
  const files = fields(bytes);
  if (!files) return undefined;
  for (const file of lengthDelimited(files, 1)) {
    const fileBytes = bytes.subarray(file.start, file.end);
    const fileFields = fields(fileBytes);
    if (!fileFields) return undefined;
    const pkg = text(fileBytes, fileFields, 2);
    for (const service of lengthDelimited(fileFields, 6)) {
      const serviceBytes = fileBytes.subarray(service.start, service.end);
      const serviceFields = fields(serviceBytes);
      if (!serviceFields) return undefined;
      const name = text(serviceBytes, serviceFields, 1);
      const qualified = pkg ? `${pkg}.${name}` : name;
      for (const method of lengthDelimited(serviceFields, 2)) {
        const methodBytes = serviceBytes.subarray(method.start, method.end);
        const methodFields = fields(methodBytes);
        if (!methodFields) return undefined;
        shapes.set(`/${qualified}/${text(methodBytes, methodFields, 1)}`, {
          requestStream: flag(methodBytes, methodFields, 5),
          responseStream: flag(methodBytes, methodFields, 6),
        });
      }
    }
  }
  return shapes;
}

const lengthDelimited = (fields: readonly WireField[], number: number) => fields.filter((f) => f.number === number && f.wireType === WIRE_LEN);

/** The last occurrence wins, as protobuf merges scalar fields. */
function text(buf: Uint8Array, fields: readonly WireField[], number: number): string {
  const f = lengthDelimited(fields, number).at(-1);
  return f ? Buffer.from(buf.buffer, buf.byteOffset + f.start, f.end - f.start).toString('utf8') : '';
}

function flag(buf: Uint8Array, fields: readonly WireField[], number: number): boolean {
  const f = fields.filter((x) => x.number === number && x.wireType === WIRE_VARINT).at(-1);
  // A bool varint: any non-zero byte before the end is true.
  return f !== undefined && buf.subarray(f.start, f.end).some((b) => (b & 0x7f) !== 0);
}
