/**
 * A descriptor set's outline, read straight off its wire format: the
 * services and methods it declares, whether each method streams, and the
 * type names it references but does not declare. The serving process
 * reads sets this way (to decide whether to mirror a call before its first
 * byte leaves, and to validate a config) and never loads protobufjs for
 * it: that costs a thread about 15 MB of RSS, and only the comparing
 * threads decode messages with it (protobuf/descriptors.ts).
 *
 *   FileDescriptorSet      1 file (repeated FileDescriptorProto)
 *   FileDescriptorProto    2 package, 4 message_type, 5 enum_type, 6 service, 7 extension
 *   DescriptorProto        1 name, 2 field, 3 nested_type, 4 enum_type, 6 extension
 *   FieldDescriptorProto   2 extendee, 6 type_name
 *   EnumDescriptorProto    1 name
 *   ServiceDescriptorProto 1 name, 2 method (repeated)
 *   MethodDescriptorProto  1 name, 2 input_type, 3 output_type, 5 client_streaming, 6 server_streaming
 */
import { splitFields, WIRE_LEN, WIRE_VARINT, type WireField } from './wire.js';

export interface CallShape {
  /** The client sends a stream of messages (client or bidi streaming). */
  readonly requestStream: boolean;
  /** The server answers with a stream of messages (server or bidi streaming). */
  readonly responseStream: boolean;
}

export interface DescriptorOutline {
  /** Fully qualified service names ("shop.Catalog"), in declaration order. */
  readonly services: readonly string[];
  /** Every method by its request path ("/pkg.Service/Method"). */
  readonly methods: ReadonlyMap<string, CallShape>;
  /** Declares no service, message or enum at all. */
  readonly empty: boolean;
  /** Type names referenced (by a field, an extension or a method) that the set does not declare, each with where. */
  readonly unresolved: readonly { readonly name: string; readonly from: string }[];
}

/** One length-delimited field's bytes with its own fields. */
interface Part {
  readonly bytes: Uint8Array;
  readonly fields: readonly WireField[];
}

/** Undefined when the bytes are not a well-formed descriptor set. */
export function readDescriptorOutline(bytes: Uint8Array): DescriptorOutline | undefined {
  const budget = { steps: 2 * bytes.length + 1024 };
  const split = (buf: Uint8Array): Part | undefined => {
    const fields = splitFields(buf, budget);
    return fields && { bytes: buf, fields };
  };
  const parts = (of: Part, number: number): Part[] | undefined => {
    const out: Part[] = [];
    for (const f of lengthDelimited(of.fields, number)) {
      const part = split(of.bytes.subarray(f.start, f.end));
      if (!part) return undefined;
      out.push(part);
    }
    return out;
  };

  const set = split(bytes);
  if (!set) return undefined;
  const services: string[] = [];
  const methods = new Map<string, CallShape>();
  const declared = new Set<string>();
  /** [name as written, the scope it was written in, where] */
  const references: [string, string, string][] = [];

  const fieldsOf = (owner: Part, number: number, scope: string): boolean => {
    const fields = parts(owner, number);
    if (!fields) return false;
    for (const field of fields) {
      const where = `${scope}.${text(field, 1)}`.slice(1);
      for (const ref of [text(field, 6), text(field, 2)]) if (ref) references.push([ref, scope, where]);
    }
    return true;
  };
  const enumsOf = (owner: Part, number: number, scope: string): boolean => {
    const enums = parts(owner, number);
    if (!enums) return false;
    for (const e of enums) declared.add(`${scope}.${text(e, 1)}`);
    return true;
  };
  const messagesOf = (owner: Part, number: number, scope: string): boolean => {
    const messages = parts(owner, number);
    if (!messages) return false;
    for (const message of messages) {
      const name = `${scope}.${text(message, 1)}`;
      declared.add(name);
      if (!fieldsOf(message, 2, name) || !fieldsOf(message, 6, name) || !messagesOf(message, 3, name) || !enumsOf(message, 4, name)) return false;
    }
    return true;
  };

  const files = parts(set, 1);
  if (!files) return undefined;
  for (const file of files) {
    const pkg = text(file, 2);
    const scope = pkg ? `.${pkg}` : '';
    if (!messagesOf(file, 4, scope) || !enumsOf(file, 5, scope) || !fieldsOf(file, 7, scope)) return undefined;
    const fileServices = parts(file, 6);
    if (!fileServices) return undefined;
    for (const service of fileServices) {
      const qualified = `${scope}.${text(service, 1)}`.slice(1);
      services.push(qualified);
      const serviceMethods = parts(service, 2);
      if (!serviceMethods) return undefined;
      for (const method of serviceMethods) {
        const path = `/${qualified}/${text(method, 1)}`;
        methods.set(path, { requestStream: flag(method, 5), responseStream: flag(method, 6) });
        for (const ref of [text(method, 2), text(method, 3)]) if (ref) references.push([ref, scope, path]);
      }
    }
  }

  const unresolved: { name: string; from: string }[] = [];
  for (const [name, scope, from] of references) {
    if (resolves(name, scope, declared)) continue;
    unresolved.push({ name: name.replace(/^\./, ''), from });
  }
  return { services, methods, empty: services.length === 0 && declared.size === 0, unresolved };
}

/** Why a set that reads is still not usable, if it is not; the text follows "is not a usable descriptor set: ". */
export function outlineProblem(outline: DescriptorOutline): string | undefined {
  if (outline.empty) return 'the descriptor set declares nothing';
  const first = outline.unresolved[0];
  if (!first) return undefined;
  const more = outline.unresolved.length > 1 ? ` and ${outline.unresolved.length - 1} more` : '';
  // protoc leaves imported files out unless told to include them.
  return `no such type: ${first.name} (used by ${first.from})${more}; was it written with protoc --include_imports?`;
}

/**
 * protoc writes fully qualified names (".pkg.Type"); a relative one is
 * looked up from the innermost scope outwards, as protobuf's scoping rules say.
 */
function resolves(name: string, scope: string, declared: ReadonlySet<string>): boolean {
  if (name.startsWith('.')) return declared.has(name);
  for (let at = scope; ; at = at.slice(0, Math.max(0, at.lastIndexOf('.')))) {
    if (declared.has(`${at}.${name}`)) return true;
    if (at === '') return false;
  }
}

/** The service a route's match prefix names ("/shop.Catalog/..." → "shop.Catalog"), if it names one. */
export function serviceOfPrefix(prefix: string): string | undefined {
  const m = /^\/([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+)(?:\/|$)/.exec(prefix);
  return m ? m[1] : undefined;
}

const lengthDelimited = (fields: readonly WireField[], number: number) => fields.filter((f) => f.number === number && f.wireType === WIRE_LEN);

/** The last occurrence wins, as protobuf merges scalar fields. */
function text(part: Part, number: number): string {
  const f = lengthDelimited(part.fields, number).at(-1);
  return f ? Buffer.from(part.bytes.buffer, part.bytes.byteOffset + f.start, f.end - f.start).toString('utf8') : '';
}

function flag(part: Part, number: number): boolean {
  const f = part.fields.filter((x) => x.number === number && x.wireType === WIRE_VARINT).at(-1);
  // A bool varint: any non-zero byte before the end is true.
  return f !== undefined && part.bytes.subarray(f.start, f.end).some((b) => (b & 0x7f) !== 0);
}
