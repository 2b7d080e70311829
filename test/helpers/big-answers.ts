/**
 * Upstreams answering large JSON bodies, in a process of their own so the
 * bytes they write cost the measuring process nothing. Two listeners on
 * 127.0.0.1 port 0: "primary" and "shadow"; the shadow's body has the same
 * size and shape, with one value in every thousand items changed. Any path
 * under /light answers a small JSON document instead.
 *
 *   node dist/test/helpers/big-answers.js --bytes 6291456
 *   → stdout: {"primary":PORT,"shadow":PORT,"bytes":N}
 *
 * Also the bench's upstream (bench/heavy-shadow.mjs). Stop it with a signal.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

/** A JSON array of items of about `bytes` bytes; `variant` changes one price in a thousand. */
export function bigJson(bytes: number, variant: boolean): Buffer {
  const items: string[] = [];
  let size = 2;
  for (let i = 0; size < bytes; i++) {
    const price = variant && i % 1000 === 999 ? i + 1 : i;
    const item = `{"id":${i},"name":"item-${i}","price":${price},"tags":["a","b"],"stock":{"warehouse":"w${i % 7}","count":${i % 50}}}`;
    items.push(item);
    size += item.length + 1;
  }
  return Buffer.from(`[${items.join(',')}]`);
}

const LIGHT = Buffer.from('{"ok":true}');

function listen(body: Buffer): Promise<http.Server> {
  const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    req.resume();
    const answer = req.url?.startsWith('/light') ? LIGHT : body;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(answer.length) });
    res.end(answer);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { bytes: { type: 'string', default: String(6 * 1024 * 1024) } } });
  const bytes = Number(values.bytes);
  const [primary, shadow] = await Promise.all([listen(bigJson(bytes, false)), listen(bigJson(bytes, true))]);
  const port = (s: http.Server) => (s.address() as AddressInfo).port;
  process.stdout.write(`${JSON.stringify({ primary: port(primary), shadow: port(shadow), bytes })}\n`);
  process.on('SIGTERM', () => process.exit(0));
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'))) void main();
