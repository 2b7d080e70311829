/** A small HTTP client for tests: one request, the whole answer. */
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';

export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly text: string;
  json<T = any>(): T;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: OutgoingHttpHeaders;
  readonly body?: string | Buffer;
  readonly agent?: http.Agent | false;
  readonly timeoutMs?: number;
}

export function request(url: string, options: RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { ...options.headers };
    // Node's client frames DELETE/OPTIONS bodies only when told the length.
    if (options.body !== undefined && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) {
      headers['content-length'] = Buffer.byteLength(options.body);
    }
    const req = http.request(
      url,
      { method: options.method ?? 'GET', headers, agent: options.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const text = body.toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json: () => JSON.parse(text) });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface RequestLoop {
  /** Answers with status 200 so far. */
  readonly ok: number;
  /** Every other answer, and every error. */
  readonly failures: string[];
  /** Stops the loop, waits for requests in flight, then runs the cleanup. */
  finish(): Promise<void>;
}

/**
 * A bounded request loop for "zero failed requests while X happens" tests:
 * `concurrency` loops each call `send(worker)` back to back until finish()
 * or `maxMs`.
 */
export function requestLoop(
  options: { concurrency: number; maxMs: number; cleanup?: () => void },
  send: (worker: number) => Promise<{ status: number; text: string }>,
): RequestLoop {
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const deadline = Date.now() + options.maxMs;
  const workers = Array.from({ length: options.concurrency }, async (_, worker) => {
    while (!stop && Date.now() < deadline) {
      try {
        const r = await send(worker);
        if (r.status === 200) ok++;
        else failures.push(`status ${r.status}: ${r.text}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  });
  return {
    get ok() {
      return ok;
    },
    failures,
    async finish() {
      stop = true;
      await Promise.all(workers);
      options.cleanup?.();
    },
  };
}

/** Runs `count` requests, `concurrency` at a time, each through `fn`. */
export async function runConcurrently<T>(count: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      const i = next++;
      results[i] = await fn(i);
    }
  });
  await Promise.all(workers);
  return results;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}
