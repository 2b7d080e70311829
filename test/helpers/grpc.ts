/**
 * A gRPC service for the tests, served and called by @grpc/grpc-js (a
 * client and server nobody here wrote). Messages are JSON, so the service
 * is defined by hand: the wire framing, metadata, deadlines and status
 * handling are grpc-js's own.
 */
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';

export interface EchoRequest {
  text: string;
  /** Server streaming: this many answers. */
  count?: number;
  /** The server waits this long before answering. */
  delayMs?: number;
  /** Pad the answer with this many bytes. */
  pad?: number;
}
export interface EchoReply {
  text: string;
  server: string;
  index?: number;
  pad?: string;
}

const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString('utf8')),
};

const method = (name: string, requestStream: boolean, responseStream: boolean) => ({
  path: `/test.Echo/${name}`,
  requestStream,
  responseStream,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});

export const ECHO_SERVICE = {
  unary: method('Unary', false, false),
  serverStream: method('ServerStream', false, true),
  clientStream: method('ClientStream', true, false),
  bidi: method('Bidi', true, true),
} satisfies grpc.ServiceDefinition;

export const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo') as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export interface EchoServer {
  readonly port: number;
  readonly url: string;
  /** Calls seen, and how many were cancelled by the client. */
  calls: number;
  cancelled: number;
  /** Metadata of the last call. */
  lastMetadata: grpc.Metadata | undefined;
  close(): Promise<void>;
}

/** A grpc-js server on 127.0.0.1:0 (cleartext, or TLS with the given pair). */
export async function startEchoServer(name: string, tls?: { cert: string; key: string }): Promise<EchoServer> {
  const server = new grpc.Server();
  const state: EchoServer = {
    port: 0,
    url: '',
    calls: 0,
    cancelled: 0,
    lastMetadata: undefined,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
  const seen = (call: { metadata: grpc.Metadata; on(event: 'cancelled', cb: () => void): unknown }) => {
    state.calls++;
    state.lastMetadata = call.metadata;
    call.on('cancelled', () => state.cancelled++);
  };
  const reply = (req: EchoRequest, index?: number): EchoReply => ({
    text: req.text,
    server: name,
    ...(index !== undefined ? { index } : {}),
    ...(req.pad ? { pad: 'x'.repeat(req.pad) } : {}),
  });
  server.addService(ECHO_SERVICE, {
    unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) => {
      seen(call);
      if (call.request.text === 'fail') return callback({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
      const answer = () => callback(null, reply(call.request), new grpc.Metadata());
      if (call.request.delayMs) setTimeout(answer, call.request.delayMs);
      else answer();
    },
    serverStream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
      seen(call);
      const count = call.request.count ?? 3;
      let i = 0;
      const next = () => {
        if (call.cancelled) return;
        if (i >= count) return call.end();
        call.write(reply(call.request, i++));
        setTimeout(next, call.request.delayMs ?? 0);
      };
      next();
    },
    clientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) => {
      seen(call);
      const texts: string[] = [];
      call.on('data', (req: EchoRequest) => texts.push(req.text));
      call.on('end', () => callback(null, { text: texts.join(','), server: name }));
    },
    bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => {
      seen(call);
      let i = 0;
      call.on('data', (req: EchoRequest) => call.write(reply(req, i++)));
      call.on('end', () => call.end());
    },
  });
  const credentials = tls
    ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(tls.cert), private_key: Buffer.from(tls.key) }], false)
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  state.calls = 0;
  Object.assign(state, { port, url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}` });
  return state;
}

/** A generated client's method, called by name (the generic constructor has no static types). */
type ClientMethod = (this: grpc.Client, ...args: unknown[]) => unknown;
const clientMethod = (client: grpc.Client, name: string) => (client as unknown as Record<string, ClientMethod>)[name]!;

/** Promise forms of the four call kinds. */
export function unary(client: grpc.Client, request: EchoRequest, options: { metadata?: grpc.Metadata; deadlineMs?: number } = {}): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    const deadline = options.deadlineMs ? Date.now() + options.deadlineMs : Infinity;
    clientMethod(client, 'unary').call(client, request, options.metadata ?? new grpc.Metadata(), { deadline }, (err: grpc.ServiceError | null, reply: EchoReply) =>
      err ? reject(err) : resolve(reply),
    );
  });
}

export function serverStream(client: grpc.Client, request: EchoRequest): grpc.ClientReadableStream<EchoReply> {
  return clientMethod(client, 'serverStream').call(client, request) as grpc.ClientReadableStream<EchoReply>;
}

export function collect<T>(stream: NodeJS.ReadableStream): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const out: T[] = [];
    stream.on('data', (item: T) => out.push(item));
    stream.on('error', reject);
    stream.on('end', () => resolve(out));
  });
}

export function bidi(client: grpc.Client): grpc.ClientDuplexStream<EchoRequest, EchoReply> {
  return clientMethod(client, 'bidi').call(client) as grpc.ClientDuplexStream<EchoRequest, EchoReply>;
}

export function clientStream(client: grpc.Client, requests: EchoRequest[]): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    const call = clientMethod(client, 'clientStream').call(client, (err: grpc.ServiceError | null, reply: EchoReply) =>
      err ? reject(err) : resolve(reply),
    ) as grpc.ClientWritableStream<EchoRequest>;
    for (const r of requests) call.write(r);
    call.end();
  });
}

/**
 * An HTTP/2 upstream that answers a stream's head and never reads its
 * body (flow control stops the sender): a mirrored stream's copy can only
 * queue. `resets` has each stream's RST_STREAM code once it closed.
 */
export async function startStuckH2Server(): Promise<{ port: number; resets: number[]; close(): Promise<void> }> {
  const resets: number[] = [];
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer();
  server.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.pause();
    stream.once('close', () => resets.push(stream.rstCode));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    resets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}
