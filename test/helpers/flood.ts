/**
 * A flood of silent connections from its own process, so that the process
 * measuring other clients' latency is not the one busy opening sockets.
 *
 *   node flood.js PORT COUNT WAVE
 *
 * Opens COUNT connections to 127.0.0.1:PORT, WAVE at a time, sending
 * nothing; a connection the server closes is let go. Prints one JSON line
 * `{opened, closedByServer}` when every wave is out, then holds the rest
 * until its stdin ends, when it closes them all and exits.
 */
import net, { type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

export const FLOOD_SCRIPT = fileURLToPath(import.meta.url);

async function main(): Promise<void> {
  const [port, count, wave] = process.argv.slice(2).map(Number) as [number, number, number];
  const open = new Set<Socket>();
  let closedByServer = 0;
  let opened = 0;
  for (let sent = 0; sent < count; sent += wave) {
    await Promise.all(
      Array.from({ length: Math.min(wave, count - sent) }, () => {
        const socket = net.connect(port, '127.0.0.1');
        open.add(socket);
        socket.on('error', () => undefined);
        socket.on('data', () => undefined);
        socket.once('close', () => {
          if (open.delete(socket)) closedByServer++;
        });
        return new Promise<void>((resolve) => {
          socket.once('connect', () => {
            opened++;
            resolve();
          });
          socket.once('close', () => resolve());
        });
      }),
    );
  }
  process.stdout.write(JSON.stringify({ opened, closedByServer }) + '\n');
  process.stdin.resume();
  process.stdin.once('end', () => {
    for (const socket of open) socket.destroy();
    open.clear();
    process.exit(0);
  });
}

if (process.argv[1] === FLOOD_SCRIPT) void main();
