/**
 * A FileDescriptorSet (what `protoc --descriptor_set_out` writes) loaded
 * with protobufjs: its services and the message types of each method, by
 * the `/package.Service/Method` path gRPC requests carry. Field names are
 * kept as the .proto declares them (`unit_price`, not `unitPrice`).
 *
 * Only the shadow threads load protobufjs, and only once a pair needs
 * it (PROTOBUF); the serving process reads sets with protobuf/outline.ts.
 */
import type protobuf from 'protobufjs';
import { LazyModule } from '../lazy-module.js';

/** protobufjs with its descriptor extension (Root.fromDescriptor). Loaded by the first gRPC pair of a route with a descriptor set (diff/parsers.ts). */
export const PROTOBUF = new LazyModule<typeof protobuf>('protobufjs', async () => {
  const { default: loaded } = await import('protobufjs');
  await import('protobufjs/ext/descriptor.js');
  return loaded;
});

export interface ProtoMethod {
  /** "/pkg.Service/Method" */
  readonly path: string;
  readonly request: protobuf.Type;
  readonly response: protobuf.Type;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

export interface ProtoSchema {
  /** Fully qualified service names ("shop.Catalog"). */
  readonly services: readonly string[];
  /** The method a request path names, if the set declares it. */
  method(path: string): ProtoMethod | undefined;
}

/** Thrown when the bytes are not a usable descriptor set. */
export class DescriptorSetError extends Error {
  readonly code = 'EDESCRIPTORS';
}

function servicesOf(ns: protobuf.NamespaceBase, out: protobuf.Service[]): void {
  const { Namespace, Service, Type } = PROTOBUF.get();
  for (const nested of ns.nestedArray) {
    if (nested instanceof Service) out.push(nested);
    if (nested instanceof Namespace || nested instanceof Type || nested instanceof Service) servicesOf(nested, out);
  }
}

const qualified = (o: protobuf.ReflectionObject) => o.fullName.replace(/^\./, '');

/** Parses and resolves a descriptor set. Throws DescriptorSetError. PROTOBUF must be loaded. */
export function loadDescriptorSet(bytes: Uint8Array): ProtoSchema {
  const { Root } = PROTOBUF.get();
  let root: protobuf.Root;
  try {
    root = Root.fromDescriptor(bytes, { keepCase: true });
    root.resolveAll();
  } catch (err) {
    const message = (err as Error).message;
    // protoc leaves imported files out unless told to include them.
    if (/no such (?:type|enum)/i.test(message)) throw new DescriptorSetError(`${message} (was it written with protoc --include_imports?)`);
    throw new DescriptorSetError(`not a FileDescriptorSet (${message})`);
  }
  if (root.nestedArray.length === 0) throw new DescriptorSetError('the descriptor set declares nothing');
  const services: protobuf.Service[] = [];
  servicesOf(root, services);
  const methods = new Map<string, ProtoMethod>();
  for (const service of services) {
    for (const m of service.methodsArray) {
      const path = `/${qualified(service)}/${m.name}`;
      methods.set(path, {
        path,
        request: m.resolvedRequestType!,
        response: m.resolvedResponseType!,
        requestStream: m.requestStream === true,
        responseStream: m.responseStream === true,
      });
    }
  }
  const names = services.map(qualified);
  return {
    services: names,
    method: (path) => methods.get(path.split('?')[0]!),
  };
}
