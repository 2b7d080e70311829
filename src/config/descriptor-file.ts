/**
 * Checking a descriptor set file a route names (diff.protoDescriptors): a
 * regular file, bounded in size, that reads as a FileDescriptorSet and
 * resolves every type it references. Read by its outline alone
 * (protobuf/outline.ts), so validating a config loads no protobuf library;
 * the shadow threads load the set with protobufjs (diff/descriptor-sets.ts).
 */
import { outlineProblem, readDescriptorOutline, type DescriptorOutline } from '../protobuf/outline.js';
import { readDescriptorBytes } from './descriptor-bytes.js';

/** The outline, or why not, as text that follows the file's quoted name. */
export type CheckedSet = { readonly outline: DescriptorOutline } | { readonly problem: string };

/** Never throws. */
export function checkDescriptorFile(path: string): CheckedSet {
  const read = readDescriptorBytes(path);
  if ('problem' in read) return read;
  const outline = readDescriptorOutline(read.bytes);
  if (!outline) return { problem: 'is not a usable descriptor set: not a FileDescriptorSet (not protobuf wire format)' };
  const problem = outlineProblem(outline);
  return problem === undefined ? { outline } : { problem: `is not a usable descriptor set: ${problem}` };
}
