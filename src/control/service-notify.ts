/**
 * Tells a service manager (systemd, Type=notify) when the gateway is ready,
 * reloading or stopping. Node cannot send unix datagrams, so the messages go
 * through `systemd-notify`, one at a time and in order; systemd-notify waits
 * until systemd has read each one, so the sender's cgroup is still known
 * (the unit sets NotifyAccess=all for these helper processes). Without
 * $NOTIFY_SOCKET nothing is sent and nothing is spawned.
 */
import { execFile } from 'node:child_process';
import type { Logger } from '../log/logger.js';

export interface ServiceNotifier {
  ready(status?: string): Promise<void>;
  reloading(): Promise<void>;
  stopping(): Promise<void>;
}

export function serviceNotifier(logger: Logger, env: NodeJS.ProcessEnv = process.env): ServiceNotifier {
  if (!env['NOTIFY_SOCKET']) {
    const nothing = () => Promise.resolve();
    return { ready: nothing, reloading: nothing, stopping: nothing };
  }
  let queue: Promise<void> = Promise.resolve();
  const send = (...fields: string[]): Promise<void> => {
    queue = queue.then(
      () =>
        new Promise<void>((resolve) => {
          execFile('systemd-notify', fields, { timeout: 10_000 }, (err, _stdout, stderr) => {
            if (err) logger.warn('service.notify', `systemd-notify ${fields.join(' ')} failed: ${stderr.trim() || err.message}`);
            resolve();
          });
        }),
    );
    return queue;
  };
  return {
    ready: (status) => send('READY=1', ...(status ? [`STATUS=${status}`] : [])),
    // MONOTONIC_USEC lets Type=notify-reload units match the READY=1 that follows.
    reloading: () => send('RELOADING=1', `MONOTONIC_USEC=${monotonicMicros()}`),
    stopping: () => send('STOPPING=1'),
  };
}

/** CLOCK_MONOTONIC in microseconds: process.hrtime is read from it on Linux. */
function monotonicMicros(): string {
  return (process.hrtime.bigint() / 1000n).toString();
}
