#!/usr/bin/env node
// Requests at a fixed rate, answers drained unread, in a process of its own
// so that reading large answers costs the measuring process nothing.
//
//   node bench/lib/paced-load.mjs --url URL --rate 100 --seconds 5 [--new-connections]
//   (--new-connections: a connection per request, as clients that do not keep alive)
//   → stdout, at the end: {"sent":N,"ok":N,"failed":N,"p50":MS,"p99":MS} (latencies of the answers that came)
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { url: { type: 'string' }, rate: { type: 'string', default: '100' }, seconds: { type: 'string', default: '5' }, 'new-connections': { type: 'boolean', default: false } },
});
const rate = Number(values.rate);
const total = Math.round(rate * Number(values.seconds));
const agent = new http.Agent({ keepAlive: !values['new-connections'], maxSockets: 256 });
let sent = 0;
let ok = 0;
let failed = 0;
const done = [];
const latencies = [];
const started = performance.now();
// Paced by the clock, not by answers: a slow gateway gets the same arrivals.
const timer = setInterval(() => {
  const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
  while (sent < due) {
    sent++;
    done.push(
      new Promise((resolve) => {
        const sentAt = performance.now();
        const req = http.get(values.url, { agent }, (res) => {
          if (res.statusCode === 200) ok++;
          else failed++;
          res.resume();
          res.once('end', () => {
            latencies.push(performance.now() - sentAt);
            resolve();
          });
          res.once('error', resolve);
        });
        req.setTimeout(30_000, () => req.destroy());
        req.once('error', () => {
          failed++;
          resolve();
        });
      }),
    );
  }
  if (sent >= total) {
    clearInterval(timer);
    void Promise.all(done).then(() => {
      latencies.sort((a, b) => a - b);
      const at = (q) => Number((latencies[Math.floor(q * (latencies.length - 1))] ?? NaN).toFixed(2));
      process.stdout.write(`${JSON.stringify({ sent, ok, failed, p50: at(0.5), p99: at(0.99) })}\n`);
      agent.destroy();
    });
  }
}, 5);
