/**
 * A real Prometheus (Debian's `prometheus` package) on loopback with a 1 s
 * scrape and a temporary storage dir, and a small forwarding proxy to put
 * in front of anything: to cut scrapes (a gap), or to serve Prometheus
 * under a path prefix behind TLS and auth, as Mimir or a Grafana Cloud
 * endpoint would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { tempDir } from './gateway.js';
import { request } from './http.js';
import { deadPort } from './upstream.js';

/** Installed by .ci/run (Debian package `prometheus`). */
export const PROMETHEUS_BIN = process.env['PROMETHEUS_BIN'] ?? '/usr/bin/prometheus';

export interface ScrapeTarget {
  /** host:port of an admin API (or of a proxy in front of one). */
  readonly target: string;
  readonly labels: Record<string, string>;
}

export interface TestPrometheus {
  readonly url: string;
  readonly child: ChildProcess;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startPrometheus(targets: readonly ScrapeTarget[]): Promise<TestPrometheus> {
  const tmp = tempDir('gatewayctl-prometheus-');
  const config = join(tmp.dir, 'prometheus.yml');
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: '1s', scrape_timeout: '800ms', evaluation_interval: '1s' },
      scrape_configs: [
        {
          job_name: 'gatewayctl',
          static_configs: targets.map((t) => ({ targets: [t.target], labels: t.labels })),
        },
      ],
    }),
  );
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await deadPort();
    let output = '';
    const child = spawn(
      PROMETHEUS_BIN,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(tmp.dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 20_000;
    let ready = false;
    while (Date.now() < deadline && child.exitCode === null) {
      const answer = await request(url + '/-/ready').catch(() => undefined);
      if (answer?.status === 200) {
        ready = true;
        break;
      }
      await sleep(100);
    }
    const close = async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    };
    if (ready) {
      return {
        url,
        child,
        async close() {
          await close();
          tmp.remove();
        },
      };
    }
    await close();
    if (!/address already in use/.test(output)) {
      tmp.remove();
      throw new Error(`prometheus did not become ready:\n${output}`);
    }
  }
  tmp.remove();
  throw new Error('prometheus could not find a free port');
}

export interface ForwarderOptions {
  /** Only paths under this prefix are served, with the prefix taken off. */
  readonly pathPrefix?: string;
  /** Headers every request must carry, else 401. */
  readonly requireHeaders?: Record<string, string>;
  readonly tls?: { cert: string; key: string };
}

export interface Forwarder {
  readonly url: string;
  /** host:port, for a scrape target. */
  readonly address: string;
  /** While true, every connection is cut: the scrapes behind it fail. */
  cut: boolean;
  /** Requests seen (method, path after the prefix). */
  readonly seen: string[];
  close(): Promise<void>;
}

/** An HTTP(S) forwarding proxy to `target` (an http:// base URL). */
export async function startForwarder(target: string, options: ForwarderOptions = {}): Promise<Forwarder> {
  const upstream = new URL(target);
  const state = { cut: false };
  const seen: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (state.cut) {
      req.socket.destroy();
      return;
    }
    let path = req.url ?? '/';
    if (options.pathPrefix) {
      if (!path.startsWith(options.pathPrefix + '/')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n');
        return;
      }
      path = path.slice(options.pathPrefix.length);
    }
    for (const [k, v] of Object.entries(options.requireHeaders ?? {})) {
      if (req.headers[k.toLowerCase()] !== v) {
        res.writeHead(401, { 'content-type': 'text/plain' }).end(`missing ${k}\n`);
        return;
      }
    }
    seen.push(`${req.method} ${path}`);
    const proxied = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path, headers: { ...req.headers, host: upstream.host }, agent: false },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    proxied.on('error', () => res.destroy());
    req.pipe(proxied);
  };
  const server = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const forwarder: Forwarder = {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}${options.pathPrefix ?? ''}`,
    address: `127.0.0.1:${port}`,
    get cut() {
      return state.cut;
    },
    set cut(value: boolean) {
      state.cut = value;
    },
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return forwarder;
}
