/**
 * Reading a descriptor set file a route names (diff.protoDescriptors): a
 * regular file, bounded in size, parsed as a FileDescriptorSet. Used by
 * validate and by the comparison that decodes gRPC answers with it.
 * readDescriptorBytes alone loads no protobuf library (the serving thread
 * reads which methods stream with it).
 */
import { DescriptorSetError, loadDescriptorSet, type ProtoSchema } from '../protobuf/descriptors.js';
import { readDescriptorBytes } from './descriptor-bytes.js';

/** The schema, or why not, as text that follows the file's quoted name. */
export type LoadedSet = { readonly schema: ProtoSchema } | { readonly problem: string };

/** Never throws. */
export function readDescriptorSet(path: string): LoadedSet {
  const read = readDescriptorBytes(path);
  if ('problem' in read) return read;
  try {
    return { schema: loadDescriptorSet(read.bytes) };
  } catch (err) {
    if (err instanceof DescriptorSetError) return { problem: `is not a usable descriptor set: ${err.message}` };
    return { problem: `cannot be read: ${(err as Error).message}` };
  }
}
