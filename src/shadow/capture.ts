/**
 * Collects a body up to a byte limit. Past the limit it keeps the prefix,
 * counts the rest, and says so: memory stays bounded whatever the peer sends.
 */
export class BodyCapture {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  total = 0;
  overflowed = false;

  constructor(private readonly limit: number) {}

  /** Returns false once the limit is passed (callers may stop feeding). */
  push(chunk: Buffer): boolean {
    this.total += chunk.length;
    if (this.overflowed) return false;
    const room = this.limit - this.kept;
    if (chunk.length <= room) {
      this.chunks.push(chunk);
      this.kept += chunk.length;
      return true;
    }
    if (room > 0) {
      this.chunks.push(chunk.subarray(0, room));
      this.kept += room;
    }
    this.overflowed = true;
    return false;
  }

  concat(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.kept);
  }
}
