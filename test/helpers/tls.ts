/**
 * TLS for tests: the committed test certificates (scripts/make-test-certs.sh),
 * certificates made on the spot with openssl (ones that expire soon), an
 * HTTPS client that reports the certificate it was shown, and HTTPS
 * upstream servers.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { REPO_ROOT } from './cli.js';

export const TLS_FIXTURES = join(REPO_ROOT, 'test/fixtures/tls');
export const fixture = (name: string) => join(TLS_FIXTURES, name);
export const pem = (name: string) => readFileSync(fixture(name), 'utf8');
export const CA = pem('ca.pem');

/** SHA-256 fingerprint of a PEM certificate file (the leaf). */
export function fingerprintOf(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).fingerprint256;
}

/**
 * A certificate for `names`, signed by the test CA, valid for `days` from
 * now: written to DIR/NAME.pem and DIR/NAME.key.
 */
export function makeCertificate(dir: string, name: string, names: string[], days: number): { cert: string; key: string } {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const san = names.map((n) => (/^[\d.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  writeFileSync(ext, `basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${names[0]}`], { stdio: 'ignore' });
  execFileSync(
    'openssl',
    ['x509', '-req', '-in', csr, '-CA', fixture('ca.pem'), '-CAkey', fixture('ca.key'), '-set_serial', String(Date.now()), '-days', String(days), '-sha256', '-extfile', ext, '-out', cert],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

export interface TlsAnswer {
  readonly status: number;
  readonly text: string;
  readonly headers: http.IncomingHttpHeaders;
  /** Fingerprint of the certificate the server presented. */
  readonly fingerprint: string;
  readonly protocol: string | null;
}

export interface TlsRequestOptions {
  readonly servername?: string;
  readonly ca?: string;
  readonly agent?: https.Agent | false;
  readonly minVersion?: 'TLSv1.2' | 'TLSv1.3';
  readonly maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  readonly headers?: http.OutgoingHttpHeaders;
  readonly timeoutMs?: number;
}

/** One HTTPS request to the gateway; verifies against the test CA by default. */
export function tlsRequest(url: string, options: TlsRequestOptions = {}): Promise<TlsAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        ca: options.ca ?? CA,
        agent: options.agent ?? false,
        // '' sends no SNI (Node would otherwise take it from the Host header).
        servername: options.servername ?? '',
        ...(options.minVersion ? { minVersion: options.minVersion } : {}),
        ...(options.maxVersion ? { maxVersion: options.maxVersion } : {}),
        headers: { host: options.servername ?? 'example.com', ...options.headers },
        // Without SNI (an IP address) the chain is still verified; the names are the test's to check.
        ...(options.servername === undefined ? { checkServerIdentity: () => undefined } : {}),
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        const protocol = socket.getProtocol();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), headers: res.headers, fingerprint, protocol }));
        res.on('error', reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export interface TlsUpstream {
  readonly url: string;
  readonly port: number;
  readonly received: { url: string; headers: http.IncomingHttpHeaders }[];
  close(): Promise<void>;
}

/** An HTTPS echo server on 127.0.0.1 presenting `name`.pem from the fixtures. */
export async function startTlsUpstream(name: string, certificate = name): Promise<TlsUpstream> {
  const received: TlsUpstream['received'] = [];
  const server = https.createServer({ cert: pem(`${certificate}.pem`), key: pem(`${certificate}.key`) }, (req, res) => {
    received.push({ url: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ upstream: name, url: req.url }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    received,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
