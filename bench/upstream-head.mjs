#!/usr/bin/env node
// What building an upstream request costs the serving thread, without the
// network: node:http's ClientRequest made and ended on an agent that never
// connects, with the headers the gateway forwards for wrk's request (the
// client's three, the request id and the forwarding headers), given as an
// object (Node copies each into its table with setHeader, then serialises
// the table) and as the flat list the gateway passes (upstream/http1.ts
// headerList). Also the listeners: four once() against four on(), each
// fired once, as on every forwarded request.
//
//   npm run build && node bench/upstream-head.mjs [--rounds 5] [--count 200000]
//
// Rounds alternate the variants; the figures are ns per request, the
// median over the rounds. A tight loop's figures are a floor: on the
// request path, with other work between, each step costs more.
import { EventEmitter } from 'node:events';
import http from 'node:http';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const built = fileURLToPath(new URL('../dist/src/upstream/http1.js', import.meta.url));
if (!existsSync(built)) {
  process.stderr.write('upstream-head: build first (npm run build)\n');
  process.exit(1);
}
const { headerList } = await import(built);
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, count: { type: 'string', default: '200000' } } });
const rounds = Number(values.rounds);
const count = Number(values.count);

const agent = new http.Agent({ keepAlive: true });
// Never connects: the request is built, its head serialised at end(), and left.
agent.addRequest = () => {};
const endpoint = { url: new URL('http://127.0.0.1:8080') };
const headers = () => ({
  host: '127.0.0.1:18555',
  'user-agent': 'wrk/4.1',
  accept: '*/*',
  'x-request-id': '3b241101-e2bb-4255-8caf-4136c566a962',
  'x-forwarded-for': '127.0.0.1',
  'x-forwarded-proto': 'http',
  'x-forwarded-host': '127.0.0.1:18555',
  'x-real-ip': '127.0.0.1',
  forwarded: 'for=127.0.0.1;host="127.0.0.1:18555";proto=http',
});
const request = (h) => http.request({ hostname: '127.0.0.1', port: 8080, method: 'GET', path: '/api/items/42?view=full', headers: h, agent }).end();

let sink = 0;
const count4 = () => sink++;
const variants = {
  'request, headers as an object': () => request(headers()),
  'request, headers as a list': () => request(headerList(headers(), endpoint, 'GET')),
  'four once() listeners, fired': () => {
    const e = new EventEmitter();
    for (const name of ['a', 'b', 'c', 'd']) e.once(name, count4);
    for (const name of ['a', 'b', 'c', 'd']) e.emit(name);
  },
  'four on() listeners, fired': () => {
    const e = new EventEmitter();
    for (const name of ['a', 'b', 'c', 'd']) e.on(name, count4);
    for (const name of ['a', 'b', 'c', 'd']) e.emit(name);
  },
};

const figures = new Map(Object.keys(variants).map((name) => [name, []]));
for (let round = 0; round < rounds; round++) {
  for (const [name, run] of Object.entries(variants)) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < count; i++) run();
    figures.get(name).push(Number(process.hrtime.bigint() - started) / count);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`node ${process.version}, ${rounds} rounds × ${count}, ns per request (median; all rounds)`);
for (const [name, xs] of figures) console.log(`${name.padEnd(32)} ${median(xs).toFixed(0).padStart(6)}   (${xs.map((x) => x.toFixed(0)).join(' ')})`);
if (sink < 0) console.log(sink);
