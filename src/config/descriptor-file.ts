/**
 * Reading a descriptor set file a route names (diff.protoDescriptors): a
 * regular file, bounded in size, parsed as a FileDescriptorSet. Used by
 * validate and by the comparison that decodes gRPC answers with it.
 */
import { DescriptorSetError, loadDescriptorSet, type ProtoSchema } from '../protobuf/descriptors.js';
import { NotRegularFileError, readRegularFile } from './regular-file.js';

/** Far above real sets (protoc's set for a whole platform stays a few MB). */
export const MAX_DESCRIPTOR_BYTES = 32 * 1024 * 1024;

/** The schema, or why not, as text that follows the file's quoted name. */
export type LoadedSet = { readonly schema: ProtoSchema } | { readonly problem: string };

/** Never throws. */
export function readDescriptorSet(path: string): LoadedSet {
  try {
    const read = readRegularFile(path, MAX_DESCRIPTOR_BYTES);
    if ('oversize' in read) return { problem: `is ${read.oversize} bytes; the limit is ${MAX_DESCRIPTOR_BYTES} (is this the right file?)` };
    return { schema: loadDescriptorSet(read.bytes) };
  } catch (err) {
    if (err instanceof DescriptorSetError) return { problem: `is not a usable descriptor set: ${err.message}` };
    if (err instanceof NotRegularFileError) return { problem: err.message };
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { problem: 'does not exist' };
    if (code === 'EACCES' || code === 'EPERM') return { problem: 'cannot be read: permission denied' };
    return { problem: `cannot be read: ${(err as Error).message}` };
  }
}
