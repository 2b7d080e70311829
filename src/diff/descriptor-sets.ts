/**
 * The descriptor sets routes name (diff.protoDescriptors), loaded with
 * protobufjs once and kept by the comparison engine that uses them (not by
 * the process: a worker comparing pairs keeps its own), reread when the
 * file changes (config/stamped-files.ts). A file that cannot be read or
 * parsed gives its reason: gRPC answers are then compared by field number,
 * and the reason travels with them as a note.
 */
import { readDescriptorBytes } from '../config/descriptor-bytes.js';
import { StampedFiles } from '../config/stamped-files.js';
import { DescriptorSetError, loadDescriptorSet, type ProtoSchema } from '../protobuf/descriptors.js';

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

export class DescriptorSets {
  private readonly sets: StampedFiles<LoadedSet>;

  constructor(now?: () => number) {
    this.sets = new StampedFiles((path) => {
      const read = readDescriptorSet(path);
      return 'schema' in read ? read : { problem: `"${path}" ${read.problem}` };
    }, now);
  }

  get(path: string): LoadedSet {
    return this.sets.get(path);
  }
}
