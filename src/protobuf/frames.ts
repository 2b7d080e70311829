/**
 * gRPC message framing (the body of a gRPC request or response): each
 * message is a 1-byte compressed flag, a 4-byte big-endian length, then
 * the message. Read within bounds on message count and size; a body cut
 * short (captures stop at diff.maxBodyBytes) keeps the whole messages
 * before the cut and says so.
 */

export interface GrpcFrame {
  /** Compressed with the answer's grpc-encoding. */
  readonly compressed: boolean;
  readonly data: Buffer;
}

export interface FrameLimits {
  readonly maxMessages: number;
  readonly maxMessageBytes: number;
}

export interface Framing {
  readonly frames: GrpcFrame[];
  /** Why reading stopped before the end of the body. */
  readonly problem?: string;
}

const PREFIX = 5;

export function readFrames(body: Buffer, limits: FrameLimits): Framing {
  const frames: GrpcFrame[] = [];
  let pos = 0;
  while (pos < body.length) {
    if (frames.length >= limits.maxMessages) return { frames, problem: `more than ${limits.maxMessages} messages; the rest not compared` };
    if (body.length - pos < PREFIX) return { frames, problem: 'the last message is cut short' };
    const flag = body[pos]!;
    if (flag > 1) return { frames, problem: `message ${frames.length + 1} has compressed flag ${flag}: not gRPC framing` };
    const length = body.readUInt32BE(pos + 1);
    if (length > limits.maxMessageBytes) return { frames, problem: `message ${frames.length + 1} is ${length} bytes; the limit is ${limits.maxMessageBytes}` };
    const start = pos + PREFIX;
    if (start + length > body.length) return { frames, problem: 'the last message is cut short' };
    frames.push({ compressed: flag === 1, data: body.subarray(start, start + length) });
    pos = start + length;
  }
  return { frames };
}

/** One message framed, as a gRPC peer sends it. */
export function frame(message: Uint8Array, compressed = false): Buffer {
  const out = Buffer.alloc(PREFIX + message.length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, PREFIX);
  return out;
}

/**
 * Counts the messages of a body as it streams past, keeping none of its
 * bytes: how the gateway tells a unary call (one message) from a
 * streaming one without a descriptor set.
 */
export class FrameCounter {
  /** Messages whose prefix has begun. */
  begun = 0;
  /** Messages received whole. */
  complete = 0;
  private readonly prefix = Buffer.alloc(PREFIX);
  private prefixFill = 0;
  /** Payload bytes of the current message still to come. */
  private remaining = 0;

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - pos);
        this.remaining -= take;
        pos += take;
        if (this.remaining === 0) this.complete++;
        continue;
      }
      if (this.prefixFill === 0) this.begun++;
      const take = Math.min(PREFIX - this.prefixFill, chunk.length - pos);
      chunk.copy(this.prefix, this.prefixFill, pos, pos + take);
      this.prefixFill += take;
      pos += take;
      if (this.prefixFill === PREFIX) {
        this.prefixFill = 0;
        this.remaining = this.prefix.readUInt32BE(1);
        if (this.remaining === 0) this.complete++;
      }
    }
  }

  /** Exactly one message, whole, and nothing after it. */
  get single(): boolean {
    return this.begun === 1 && this.complete === 1;
  }
}
