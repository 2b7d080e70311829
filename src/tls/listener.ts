/**
 * TLS termination for the gateway's listener: an https.Server running the
 * same request handler as the plain one, its certificates chosen by SNI,
 * swapped in place when they rotate.
 *
 * A rotation builds new secure contexts and swaps them in: handshakes that
 * start afterwards use them; connections already established keep theirs
 * (a TLS session does not change certificate), so nothing is dropped.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls, { type SecureContext } from 'node:tls';
import type { ListenAddress } from '../config/units.js';
import type { TlsVersion } from '../config/types.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import { ConnectionGuard, type ConnectionGuardOptions } from '../proxy/connections.js';
import { NameIndex } from './names.js';
import { createRedirectServer } from './redirect.js';

/** Certificates as the serving processes receive them: PEM text, names already read. */
export interface ListenerMaterial {
  /** Rises by one per successful load; workers acknowledge it. */
  readonly generation: number;
  readonly minVersion: TlsVersion;
  /** The default certificate first. */
  readonly certificates: readonly { readonly cert: string; readonly key: string; readonly names: readonly string[] }[];
}

/**
 * Forward secrecy and AEAD only: TLS 1.3's suites, then ECDHE with AES-GCM
 * or ChaCha20-Poly1305 for TLS 1.2 (Mozilla's "intermediate" profile
 * without DHE). Every client from the last decade has one of them.
 */
export const SERVER_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export class TlsTermination {
  private material: ListenerMaterial;
  private index: NameIndex<SecureContext>;
  private server: https.Server | undefined;
  private redirect: http.Server | undefined;
  private redirectConnections: ConnectionGuard | undefined;
  private httpOptions: http.ServerOptions = {};

  constructor(
    material: ListenerMaterial,
    private readonly metrics: GatewayMetrics,
    /** A handshake gets as long as a request head. */
    private readonly handshakeTimeoutMs: number,
  ) {
    this.material = material;
    this.index = this.buildIndex(material);
  }

  get generation(): number {
    return this.material.generation;
  }

  private baseOptions(material: ListenerMaterial): tls.SecureContextOptions {
    return { minVersion: material.minVersion, ciphers: SERVER_CIPHERS, honorCipherOrder: true };
  }

  private buildIndex(material: ListenerMaterial): NameIndex<SecureContext> {
    const base = this.baseOptions(material);
    return new NameIndex(
      material.certificates.map((c) => ({ names: c.names, value: tls.createSecureContext({ ...base, cert: c.cert, key: c.key }) })),
    );
  }

  /** The HTTPS server, with the HTTP options and handler a plain one would get: a drop-in for http.createServer. */
  createServer(options: http.ServerOptions, handler: Handler): http.Server {
    this.httpOptions = options;
    const first = this.material.certificates[0]!;
    const server = https.createServer(
      {
        ...options,
        ...this.baseOptions(this.material),
        cert: first.cert,
        key: first.key,
        handshakeTimeout: this.handshakeTimeoutMs,
        // HTTP/2 first; connections that choose h2 are taken over by serving/h2.ts.
        ALPNProtocols: ['h2', 'http/1.1'],
        // Clients without SNI (an IP address) never reach this: they get the default.
        SNICallback: (servername, callback) => callback(null, this.index.lookup(servername)),
      },
      handler,
    );
    server.on('tlsClientError', (_err: Error, socket: Duplex) => {
      this.metrics.tlsHandshakeErrors.inc();
      socket.destroy();
    });
    this.server = server;
    // https.Server carries every http.Server member the runtime uses.
    return server as unknown as http.Server;
  }

  /** Serves new handshakes with `material`; established connections are untouched. */
  apply(material: ListenerMaterial): void {
    if (material.generation <= this.material.generation && material !== this.material) return;
    const index = this.buildIndex(material);
    const first = material.certificates[0]!;
    // Keep the ticket keys, so sessions resume across the rotation.
    this.server?.setSecureContext({ ...this.baseOptions(material), cert: first.cert, key: first.key, ticketKeys: this.server.getTicketKeys() });
    this.index = index;
    this.material = material;
  }

  /**
   * Starts the plain-HTTP redirect listener (when configured), pointing
   * clients at the HTTPS listener's port; passes that listener's address on.
   */
  async listenRedirect<T extends ListenAddress>(
    address: ListenAddress | undefined,
    https: T,
    /** The gateway listener's connection rules: the redirect port faces the same clients. */
    connections: Pick<ConnectionGuardOptions, 'settings' | 'exempt'>,
  ): Promise<T> {
    if (!address) return https;
    const { maxHeaderSize, headersTimeout, keepAliveTimeout, connectionsCheckingInterval } = this.httpOptions;
    const server = createRedirectServer(https.port, { maxHeaderSize, headersTimeout, keepAliveTimeout, connectionsCheckingInterval });
    this.redirectConnections = new ConnectionGuard({ ...connections, listener: 'redirect', metrics: this.metrics });
    this.redirectConnections.attach(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: address.host, port: address.port, exclusive: false }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.redirect = server;
    return https;
  }

  get redirectAddress(): ListenAddress | undefined {
    const bound = this.redirect?.address();
    return typeof bound === 'object' && bound ? { host: bound.address, port: bound.port } : undefined;
  }

  async closeRedirect(): Promise<void> {
    const server = this.redirect;
    this.redirect = undefined;
    this.redirectConnections?.close();
    this.redirectConnections = undefined;
    if (!server?.listening) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
