#!/usr/bin/env node
// The floor a Node gateway starts from: http-proxy-3 in front of one
// upstream with a keep-alive agent, nothing else. With --shadow URL, every
// GET/HEAD/OPTIONS request is also copied to that upstream through an undici
// Pool (the copy's response is read and dropped; the user never waits for it).
//
//   node bench/bare-proxy.mjs --port 7400 --target http://127.0.0.1:7100 [--shadow http://127.0.0.1:7200]
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createProxyServer } from 'http-proxy-3';
import { Pool } from 'undici';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    target: { type: 'string' },
    shadow: { type: 'string' },
  },
});
if (!values.port || !values.target) {
  process.stderr.write('usage: bare-proxy.mjs --port N --target URL [--shadow URL]\n');
  process.exit(2);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256, scheduling: 'lifo' });
const proxy = createProxyServer({ target: values.target, agent, xfwd: false });
proxy.on('error', (_err, _req, res) => {
  if (typeof res.writeHead === 'function' && !res.headersSent) {
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end('{"error":"bad gateway"}');
  } else res.destroy?.();
});

// Headers undici frames or refuses itself.
const DROP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'expect']);
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
const shadowPool = values.shadow ? new Pool(values.shadow, { connections: 256, pipelining: 1 }) : undefined;

function copy(req) {
  const headers = { 'x-shadow-request': '1' };
  for (const name in req.headers) if (!DROP.has(name)) headers[name] = req.headers[name];
  shadowPool
    .request({ method: req.method, path: req.url, headers, headersTimeout: 10_000, bodyTimeout: 10_000 })
    .then((res) => res.body.dump())
    .catch(() => undefined);
}

const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  if (shadowPool && SAFE.has(req.method)) copy(req);
  proxy.web(req, res);
});
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ event: 'listening', port: server.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
