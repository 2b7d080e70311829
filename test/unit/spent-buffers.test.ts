/**
 * A shadow thread collects the memory it has read and compared a few
 * megabytes at a time: counted, collected when V8 has not collected on its
 * own, and in a real thread reading real sockets its dead read buffers stay
 * bounded.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { exposeCollection, SpentBuffers, SPENT_COLLECT_BYTES } from '../../src/shadow/spent-buffers.js';

const MB = 1024 * 1024;

describe('spent buffers', () => {
  test('collect the young generation once every SPENT_COLLECT_BYTES', () => {
    const calls: unknown[] = [];
    const spent = new SpentBuffers(SPENT_COLLECT_BYTES, (options) => calls.push(options));
    try {
      for (let i = 0; i < 31; i++) spent.spent(64 * 1024);
      assert.equal(calls.length, 0, '31 reads of 64 KB are under the bound');
      spent.spent(64 * 1024);
      assert.deepEqual(calls, [{ type: 'minor' }]);
      assert.equal(spent.pendingBytes, 0);
      spent.spent(SPENT_COLLECT_BYTES - 1);
      assert.equal(spent.collections, 1);
    } finally {
      spent.close();
    }
  });

  test("where V8's collection is not exposed, nothing happens", () => {
    // This thread's context predates any --expose-gc: it has no gc.
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
    const spent = new SpentBuffers(1);
    spent.spent(10 * MB);
    assert.equal(spent.collections, 0);
    spent.close();
  });

  test("V8's own collection starts the count again", async () => {
    setFlagsFromString('--expose-gc');
    const realCollect = runInNewContext('gc') as (options: { type: 'minor' }) => void;
    const calls: unknown[] = [];
    const spent = new SpentBuffers(2 * MB, (options) => calls.push(options));
    try {
      spent.spent(1.5 * MB);
      realCollect({ type: 'minor' });
      const until = Date.now() + 5_000;
      while (spent.pendingBytes > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(spent.pendingBytes, 0, 'the gc entry reset the count');
      spent.spent(1.5 * MB);
      assert.equal(calls.length, 0, 'V8 collected in between: nothing to add');
    } finally {
      spent.close();
    }
  });
});

describe('a shadow thread reading large answers', () => {
  const answer = Buffer.alloc(6 * MB, 'x');
  let server: http.Server;
  let port = 0;

  before(async () => {
    server = http.createServer((_req, res) => res.end(answer));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('holds a few megabytes of dead read buffers, not tens', async () => {
    exposeCollection();
    const module = new URL('../../src/shadow/spent-buffers.js', import.meta.url).href;
    // Eight 6 MB answers, each chunk dropped once counted, as a copy past its capture limit does once hashed.
    const body = `
      const { parentPort, workerData } = require('node:worker_threads');
      const http = require('node:http');
      import(workerData.module).then(async ({ SpentBuffers }) => {
        const spent = new SpentBuffers();
        const agent = new http.Agent({ keepAlive: true });
        let peak = 0;
        for (let i = 0; i < 8; i++) {
          await new Promise((resolve, reject) => {
            http.get({ host: '127.0.0.1', port: workerData.port, agent }, (res) => {
              res.on('data', (chunk) => {
                spent.spent(chunk.length);
                peak = Math.max(peak, process.memoryUsage().arrayBuffers);
              });
              res.on('end', resolve);
            }).on('error', reject);
          });
        }
        agent.destroy();
        spent.close();
        parentPort.postMessage({ exposed: typeof gc === 'function', peak, collections: spent.collections });
      });
    `;
    const worker = new Worker(body, { eval: true, workerData: { module, port } });
    try {
      const result = await new Promise<{ exposed: boolean; peak: number; collections: number }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      assert.ok(result.exposed, 'a thread started after exposeCollection() has V8\'s collection');
      assert.ok(result.collections >= 8, `collected ${result.collections} times over 48 MB read`);
      // V8 alone collects at about 32 MB of such memory.
      assert.ok(result.peak < 16 * MB, `peak dead read buffers ${(result.peak / MB).toFixed(1)} MB`);
    } finally {
      await worker.terminate();
    }
  });
});
