/**
 * Undoes Content-Encoding (gzip, deflate, br; several in a row) before
 * bodies are compared, so gzip and plain answers with the same content are
 * equal. Bounded: output stops at a byte limit, and a truncated capture
 * decodes as far as it goes.
 */
import zlib from 'node:zlib';
import type { IncomingHttpHeaders } from 'node:http';

export interface Decoded {
  readonly body: Buffer;
  /** The encodings undone, outermost last as in the header ("gzip"). */
  readonly encoding: string | undefined;
  /** Why the body is still encoded (unknown encoding, corrupt data, too large). */
  readonly error?: string;
}

function encodingsOf(headers: IncomingHttpHeaders): string[] {
  const raw = headers['content-encoding'];
  if (raw === undefined) return [];
  const text = Array.isArray(raw) ? raw.join(',') : raw;
  return text
    .split(',')
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== '' && e !== 'identity');
}

function decodeOne(encoding: string, input: Buffer, maxBytes: number): Buffer {
  switch (encoding) {
    case 'gzip':
    case 'x-gzip':
      return zlib.gunzipSync(input, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: maxBytes });
    case 'deflate':
      // RFC 9110 says zlib-wrapped; some servers send raw deflate.
      try {
        return zlib.inflateSync(input, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: maxBytes });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw err;
        return zlib.inflateRawSync(input, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: maxBytes });
      }
    case 'br':
      return zlib.brotliDecompressSync(input, {
        finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
        maxOutputLength: maxBytes,
      });
    default:
      throw new UnsupportedEncoding(encoding);
  }
}

class UnsupportedEncoding extends Error {
  constructor(readonly encoding: string) {
    super(`content-encoding "${encoding}" is not supported`);
  }
}

/** Never throws: a body that cannot be decoded comes back as it was, with the reason. */
export function decodeBody(body: Buffer, headers: IncomingHttpHeaders, maxBytes: number): Decoded {
  const encodings = encodingsOf(headers);
  if (encodings.length === 0 || body.length === 0) return { body, encoding: undefined };
  let current = body;
  for (let i = encodings.length - 1; i >= 0; i--) {
    const encoding = encodings[i]!;
    try {
      current = decodeOne(encoding, current, maxBytes);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const reason =
        err instanceof UnsupportedEncoding
          ? err.message
          : e.code === 'ERR_BUFFER_TOO_LARGE'
            ? `${encoding} body decodes to more than ${maxBytes} bytes`
            : `cannot decode ${encoding}: ${e.message}`;
      return { body, encoding: encodings.join(', '), error: reason };
    }
  }
  return { body: current, encoding: encodings.join(', ') };
}
