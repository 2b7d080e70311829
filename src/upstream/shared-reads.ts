/**
 * Plain-HTTP upstream connections that read into one buffer, reused by
 * every such connection of the thread, instead of into memory of their
 * own for each read.
 *
 * Node gives each socket read memory of its own outside V8's heap (64 KB),
 * and node:http's response parser copies every body chunk out of it: each
 * byte of an upstream's answer was allocated twice, and the read's copy
 * was dead as soon as the parser returned, yet freed only when V8 next
 * collected. With `onread` (net.connect's public option) a read lands in
 * the buffer given, and the socket's 'data' listeners get a view of it.
 * That is safe for node:http's client because it is done with each chunk
 * before the next read: its parser runs synchronously on 'data', copies
 * bodies out and keeps no view (header strings are copied as each
 * execute() ends). The one view it does keep is a parse error's
 * `rawPacket`, which nothing here reads.
 *
 * A connection taken over by an upgrade is different: its bytes are piped
 * to the client as they come, and a write may wait. The taker copies the
 * bytes that came behind the 101 (the upgrade hands over a view) and calls
 * `ownReads`: from then on each read is a copy of its own, pushed through
 * the socket's stream as Node would (buffered while nobody reads, and
 * reading paused while the buffer is full).
 *
 * Measured with 6 MB answers (bench/README.md, "Shared upstream reads"):
 * 10-20 MB less peak RSS, and less CPU per answer under the systemd unit's
 * MALLOC_ARENA_MAX=2.
 */
import http from 'node:http';
import net, { type NetConnectOpts, type Socket } from 'node:net';

/** One read: what libuv suggests for a TCP read. */
const READ_BYTES = 64 * 1024;

let shared: Buffer | undefined;
const owning = new WeakSet<Socket>();

/** A keep-alive agent for plain HTTP whose connections read into the thread's shared buffer. */
export function sharedReadsAgent(options: http.AgentOptions): http.Agent {
  const agent = new http.Agent(options);
  // node:http's documented hook for making an agent's connections.
  agent.createConnection = (connectOptions) => connectWithSharedReads(connectOptions as NetConnectOpts);
  return agent;
}

function connectWithSharedReads(options: NetConnectOpts): Socket {
  shared ??= Buffer.allocUnsafeSlow(READ_BYTES);
  const socket: Socket = net.createConnection({
    ...options,
    onread: {
      buffer: shared,
      callback: (bytes: number, buffer: Uint8Array): boolean => {
        if (owning.has(socket)) return socket.push(Buffer.from(buffer.subarray(0, bytes)));
        socket.emit('data', (buffer as Buffer).subarray(0, bytes));
        return true;
      },
    },
  });
  return socket;
}

/** From now on `socket`'s reads are copies of its own (an upgraded connection, piped). */
export function ownReads(socket: Socket): void {
  owning.add(socket);
}
