/**
 * The descriptor sets routes name (diff.protoDescriptors), loaded once and
 * kept by the comparison engine that uses them (not by the process: a
 * worker comparing pairs keeps its own), reread when the file changes
 * (config/stamped-files.ts). A file that cannot be read or parsed gives
 * its reason: gRPC answers are then compared by field number, and the
 * reason travels with them as a note.
 */
import { readDescriptorSet, type LoadedSet } from '../config/descriptor-file.js';
import { StampedFiles } from '../config/stamped-files.js';

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
