/**
 * Reading a file the config names (the config itself, certificates, CA
 * bundles) without ever blocking: it is opened non-blocking and must be a
 * regular file. A named pipe given as `tls.cert` once froze the gateway
 * until someone wrote to it; a device could be read forever.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';

/** Thrown when the path is not a regular file; `kind` says what it is. */
export class NotRegularFileError extends Error {
  readonly code = 'ENOTREGULAR';
  constructor(readonly kind: string) {
    super(`is ${kind}, not a regular file`);
  }
}

function kindOf(stat: Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a named pipe';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * The file's bytes, or its size when over `maxBytes` (then never read).
 * Throws NotRegularFileError, or the system error (ENOENT, EACCES, ...).
 */
export function readRegularFile(path: string, maxBytes: number): { bytes: Buffer } | { oversize: number } {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new NotRegularFileError(kindOf(stat));
    if (stat.size > maxBytes) return { oversize: stat.size };
    const bytes = readFileSync(fd);
    return bytes.length > maxBytes ? { oversize: bytes.length } : { bytes };
  } finally {
    closeSync(fd);
  }
}

/**
 * A small file a flag names (a CA bundle, a token): its bytes, or an error
 * whose message says what is wrong, naming the file as `what` ("a CA
 * bundle"). /dev/zero or a pipe given by mistake would otherwise be read
 * until memory runs out, or wait for a writer.
 */
export function readSmallFile(path: string, what: string, maxBytes = 4 * 1024 * 1024): Buffer {
  const read = readRegularFile(path, maxBytes);
  if ('oversize' in read) throw new Error(`is ${read.oversize} bytes, over the ${maxBytes} bytes ${what} may have`);
  return read.bytes;
}
