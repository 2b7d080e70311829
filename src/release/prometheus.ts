/**
 * A small client for the Prometheus HTTP query API, as Prometheus, Mimir,
 * Thanos, Cortex and Grafana Cloud serve it: a base URL whose path prefix
 * is kept (http://host/prometheus), extra headers (X-Scope-OrgID), a bearer
 * token read from a file on every request (so a rotated token is picked
 * up), and https with a private CA. Every failure is a PrometheusError that
 * names Prometheus and its URL, never the gateways'.
 */
import http from 'node:http';
import https from 'node:https';
import { PrometheusError } from '../errors.js';
import { readSmallFile } from '../config/regular-file.js';

export interface PrometheusOptions {
  readonly url: string;
  /** Sent with every query, e.g. {'X-Scope-OrgID': 'team-a'}. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly bearerTokenFile?: string;
  /** PEM file of the CA that signed Prometheus' certificate. */
  readonly caFile?: string;
  /** Accept any certificate (testing only). */
  readonly insecure?: boolean;
  readonly timeoutMs?: number;
}

export interface VectorSample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

export interface MatrixSeries {
  readonly metric: Record<string, string>;
  readonly values: [number, string][];
}

interface QueryReply {
  status: string;
  error?: string;
  errorType?: string;
  data?: { resultType: string; result: unknown[] };
}

export class PrometheusClient {
  private readonly base: URL;
  private readonly ca: Buffer | undefined;

  constructor(private readonly options: PrometheusOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new PrometheusError(`"${options.url}" is not a Prometheus URL (expected e.g. http://prometheus:9090)`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new PrometheusError(`Prometheus URL ${options.url}: only http and https are supported`);
    }
    // Keep any path prefix: http://host/prometheus + api/v1/query.
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    base.search = '';
    base.hash = '';
    this.base = base;
    try {
      this.ca = options.caFile ? readSmallFile(options.caFile, 'a CA bundle') : undefined;
    } catch (err) {
      throw new PrometheusError(`cannot read the Prometheus CA file ${options.caFile}: ${(err as Error).message}`);
    }
  }

  /** Where queries go, for messages. */
  get url(): string {
    return this.base.href;
  }

  /** An instant query evaluated at `timeMs`; the answer is a vector. */
  async vector(query: string, timeMs: number): Promise<VectorSample[]> {
    return (await this.query(query, timeMs, 'vector')) as VectorSample[];
  }

  /** An instant query of a range selector: the raw samples, with timestamps. */
  async matrix(query: string, timeMs: number): Promise<MatrixSeries[]> {
    return (await this.query(query, timeMs, 'matrix')) as MatrixSeries[];
  }

  private async query(query: string, timeMs: number, expected: string): Promise<unknown[]> {
    const form = new URLSearchParams({ query, time: (timeMs / 1000).toFixed(3) }).toString();
    const { status, text } = await this.post('api/v1/query', form);
    let reply: QueryReply;
    try {
      reply = JSON.parse(text) as QueryReply;
    } catch {
      throw new PrometheusError(`Prometheus at ${this.base.href} answered ${status} with a body that is not JSON (is the URL's path right?)`, status);
    }
    if (reply.status !== 'success' || !reply.data) {
      throw new PrometheusError(`Prometheus at ${this.base.href} refused the query ${query}: ${reply.errorType ?? status}: ${reply.error ?? 'no data'}`, status);
    }
    if (reply.data.resultType !== expected) {
      throw new PrometheusError(`Prometheus at ${this.base.href}: query ${query} gave a ${reply.data.resultType}, not a ${expected}`, status);
    }
    return reply.data.result;
  }

  private headers(body: string): Record<string, string> {
    const out: Record<string, string> = {
      ...this.options.headers,
      accept: 'application/json',
      'content-type': 'application/x-www-form-urlencoded',
      'content-length': String(Buffer.byteLength(body)),
    };
    if (this.options.bearerTokenFile) {
      let token: string;
      try {
        token = readSmallFile(this.options.bearerTokenFile, 'a token file').toString('utf8').trim();
      } catch (err) {
        throw new PrometheusError(`cannot read the Prometheus bearer token file ${this.options.bearerTokenFile}: ${(err as Error).message}`);
      }
      out['authorization'] = `Bearer ${token}`;
    }
    return out;
  }

  private post(path: string, body: string): Promise<{ status: number; text: string }> {
    const url = new URL(path, this.base);
    const headers = this.headers(body);
    const secure = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      const options: https.RequestOptions = { method: 'POST', headers, agent: false };
      if (secure) {
        if (this.ca) options.ca = this.ca;
        if (this.options.insecure) options.rejectUnauthorized = false;
      }
      const req = (secure ? https : http).request(url, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => reject(new PrometheusError(`Prometheus at ${this.base.href}: ${err.message}`, undefined, { cause: err })));
      });
      req.setTimeout(this.options.timeoutMs ?? 10_000, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(new PrometheusError(`cannot reach Prometheus at ${this.base.href}: ${err.code ?? err.message}`, undefined, { cause: err })),
      );
      req.end(body);
    });
  }
}

/** `K:V` from the command line, as a header. */
export function parseHeader(flag: string): [string, string] | undefined {
  const colon = flag.indexOf(':');
  if (colon <= 0) return undefined;
  const name = flag.slice(0, colon).trim();
  const value = flag.slice(colon + 1).trim();
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n]/.test(value)) return undefined;
  return [name, value];
}
