#!/usr/bin/env node
// A shadow upstream that answers every request after a fixed delay (500 ms
// by default) with the 300-byte JSON body. Loopback only.
//
//   node bench/slow-shadow.mjs --port 7300 [--delay 500]
import http from 'node:http';
import { parseArgs } from 'node:util';
import { SHADOW_BODY } from './lib/body.mjs';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    delay: { type: 'string', default: '500' },
  },
});
if (!values.port) {
  process.stderr.write('usage: slow-shadow.mjs --port N [--delay MS]\n');
  process.exit(2);
}
const delay = Number(values.delay);
const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(SHADOW_BODY)) };

const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  req.resume();
  const timer = setTimeout(() => {
    res.writeHead(200, headers);
    res.end(SHADOW_BODY);
  }, delay);
  res.once('close', () => clearTimeout(timer));
});
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ event: 'listening', port: server.address().port, delay })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
