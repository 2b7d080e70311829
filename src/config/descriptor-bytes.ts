/**
 * A descriptor set file's bytes (diff.protoDescriptors): a regular file,
 * bounded in size. Nothing here parses them, so any thread may use it.
 */
import { NotRegularFileError, readRegularFile } from './regular-file.js';

/** Far above real sets (protoc's set for a whole platform stays a few MB). */
export const MAX_DESCRIPTOR_BYTES = 32 * 1024 * 1024;

/** The bytes, or why not, as text that follows the file's quoted name. Never throws. */
export function readDescriptorBytes(path: string): { readonly bytes: Buffer } | { readonly problem: string } {
  try {
    const read = readRegularFile(path, MAX_DESCRIPTOR_BYTES);
    if ('oversize' in read) return { problem: `is ${read.oversize} bytes; the limit is ${MAX_DESCRIPTOR_BYTES} (is this the right file?)` };
    return { bytes: read.bytes };
  } catch (err) {
    if (err instanceof NotRegularFileError) return { problem: err.message };
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { problem: 'does not exist' };
    if (code === 'EACCES' || code === 'EPERM') return { problem: 'cannot be read: permission denied' };
    return { problem: `cannot be read: ${(err as Error).message}` };
  }
}
