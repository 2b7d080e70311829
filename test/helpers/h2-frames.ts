/**
 * HTTP/2 frames written by hand on a raw TCP socket, for clients that
 * break the rules on purpose (rapid reset, CONTINUATION floods, HPACK
 * abuse, oversized frames, too many streams), and a reader of the frames
 * the gateway answers with.
 */
import net from 'node:net';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flags = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ErrorCode = { NO_ERROR: 0, PROTOCOL_ERROR: 1, FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9, ENHANCE_YOUR_CALM: 11 } as const;

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export function settings(values: Record<number, number> = {}): Buffer {
  const entries = Object.entries(values);
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(Number(id), i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

export function rstStream(stream: number, code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, stream, payload);
}

/** HPACK string literal, no Huffman (lengths under 127 only). */
function literal(text: string): Buffer {
  const bytes = Buffer.from(text);
  if (bytes.length >= 127) {
    // Length with a continuation: 7-bit prefix integer.
    const parts = [0x7f];
    let rest = bytes.length - 127;
    while (rest >= 128) {
      parts.push((rest % 128) + 128);
      rest = Math.floor(rest / 128);
    }
    parts.push(rest);
    return Buffer.concat([Buffer.from(parts), bytes]);
  }
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

/** A header block: GET (or POST) `path` on http, with :authority, from the static table. */
export function requestBlock(authority: string, options: { post?: boolean; path?: string } = {}): Buffer {
  const path = options.path ?? '/';
  return Buffer.concat([
    Buffer.from([options.post ? 0x83 : 0x82, 0x86]),
    path === '/' ? Buffer.from([0x84]) : Buffer.concat([Buffer.from([0x04]), literal(path)]),
    Buffer.from([0x41]),
    literal(authority),
  ]);
}

/** A literal header, not indexed (HPACK 6.2.2). */
export function plainHeader(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00]), literal(name), literal(value)]);
}

/** A literal header added to the dynamic table (HPACK 6.2.1). */
export function indexedHeader(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x40]), literal(name), literal(value)]);
}

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

export interface RawH2 {
  readonly socket: net.Socket;
  readonly frames: Frame[];
  closed: boolean;
  write(data: Buffer): boolean;
  /** Resolves once a frame like this has come, or the connection closed (then undefined). */
  waitFor(match: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame | undefined>;
  goaway(): { code: number } | undefined;
  close(): void;
}

/** Connects, sends the preface and empty SETTINGS, and reads frames as they come. */
export async function rawH2(port: number): Promise<RawH2> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
  const frames: Frame[] = [];
  let buffered = Buffer.alloc(0);
  const waiters = new Set<() => void>();
  const client: RawH2 = {
    socket,
    frames,
    closed: false,
    write: (data) => (socket.writable ? socket.write(data) : false),
    waitFor(match, timeoutMs = 5000) {
      return new Promise((resolve) => {
        const check = () => {
          const found = frames.find(match);
          if (found || client.closed) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          resolve(undefined);
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    goaway() {
      const f = frames.find((x) => x.type === FrameType.GOAWAY);
      return f ? { code: f.payload.readUInt32BE(4) } : undefined;
    },
    close: () => socket.destroy(),
  };
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const f = { type: buffered[3]!, flags: buffered[4]!, stream: buffered.readUInt32BE(5) & 0x7fffffff, payload: buffered.subarray(9, 9 + length) };
      buffered = buffered.subarray(9 + length);
      frames.push(f);
      // Acknowledge the server's settings, as a client must.
      if (f.type === FrameType.SETTINGS && !(f.flags & Flags.ACK) && socket.writable) socket.write(frame(FrameType.SETTINGS, Flags.ACK, 0));
    }
    for (const w of [...waiters]) w();
  });
  socket.on('close', () => {
    client.closed = true;
    for (const w of [...waiters]) w();
  });
  socket.write(Buffer.concat([PREFACE, settings()]));
  return client;
}
