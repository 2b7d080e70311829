// wrk: one bounded run, and its text output turned into numbers.
import { run } from './procs.mjs';

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60000, h: 3600000 };

/** "312.00us", "1.23ms", "2.00s" -> milliseconds. */
export function parseDurationMs(text) {
  const m = /^([0-9.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]];
}

/** Numbers from `wrk --latency` output; throws when the run did not report. */
export function parseWrk(text) {
  const rps = /Requests\/sec:\s+([0-9.]+)/.exec(text);
  const total = /(\d+) requests in ([0-9.]+\w+)/.exec(text);
  if (!rps || !total) throw new Error(`wrk output not understood:\n${text}`);
  const percentiles = {};
  const dist = text.split('Latency Distribution')[1] ?? '';
  for (const m of dist.matchAll(/^\s+(\d+)%\s+([0-9.]+\w+)\s*$/gm)) {
    percentiles[m[1]] = parseDurationMs(m[2]);
  }
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    rps: Number(rps[1]),
    requests: Number(total[1]),
    seconds: parseDurationMs(total[2]) / 1000,
    p50: percentiles['50'],
    p90: percentiles['90'],
    p99: percentiles['99'],
    errors: {
      connect: socket ? Number(socket[1]) : 0,
      read: socket ? Number(socket[2]) : 0,
      write: socket ? Number(socket[3]) : 0,
      timeout: socket ? Number(socket[4]) : 0,
      non2xx: non2xx ? Number(non2xx[1]) : 0,
    },
  };
}

/**
 * One wrk run against url: -t threads -c connections for seconds, with the
 * latency distribution. Bounded by wrk's own -d plus a hard kill.
 */
export async function wrk(url, { seconds, threads = 1, connections = 50, timeoutSeconds = 5 }) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, `--timeout`, `${timeoutSeconds}s`, '--latency', url];
  const result = await run('wrk', args, { timeoutMs: (seconds + timeoutSeconds + 10) * 1000 });
  if (result.code !== 0) throw new Error(`wrk exited with ${result.code ?? result.signal}: ${result.stderr || result.stdout}`);
  return parseWrk(result.stdout);
}
