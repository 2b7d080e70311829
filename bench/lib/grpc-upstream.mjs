// The upstream for bench/grpc.mjs, in its own process: a grpc-js Echo
// service (JSON messages) on one port, and a bare node:http2 server
// answering every request with a small body on another (h2 throughput).
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';

const [grpcPort, h2Port] = process.argv.slice(2).map(Number);
const json = { serialize: (v) => Buffer.from(JSON.stringify(v)), deserialize: (b) => JSON.parse(b.toString()) };
const service = {
  unary: { path: '/bench.Echo/Unary', requestStream: false, responseStream: false, requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize },
};
const server = new grpc.Server();
server.addService(service, { unary: (call, callback) => callback(null, { text: call.request.text, n: 42 }) });
server.bindAsync(`127.0.0.1:${grpcPort}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  const body = JSON.stringify({ id: 42, name: 'widget', price: 9.99 });
  http2
    .createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    })
    .listen(h2Port, '127.0.0.1', () => console.log('ready'));
});
