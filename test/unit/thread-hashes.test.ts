/**
 * The shadow thread's side of hashing primary answers past their capture
 * limit: pieces in any sizes give the body's digest, a pair takes its job's
 * digest once, and jobs whose pairs never come are bounded.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import type { WirePair } from '../../src/diff/thread-wire.js';
import { MAX_HASH_JOBS, ThreadHashes } from '../../src/shadow/thread-hashes.js';

/** A piece in memory of its own, as the serving side sends them (the budget counts whole buffers). */
const piece = (job: number, bytes: Buffer) => ({ job, bytes: new Uint8Array(bytes) });
const pairOf = (job: number | undefined) => ({ route: 'r', primary: { status: 200, headers: {}, body: Buffer.alloc(0), truncated: true, bodyBytes: 9, latencyMs: 1, ...(job === undefined ? {} : { sha256Job: job }) } }) as unknown as WirePair;

describe('ThreadHashes', () => {
  test("pieces of two jobs interleaved give each body's digest; the pair takes it once, and a pair without a job passes", () => {
    const hashes = new ThreadHashes();
    hashes.add({ type: 'hash', pieces: [piece(1, Buffer.from('hello ')), piece(2, Buffer.from('other'))], forget: [] });
    hashes.add({ type: 'hash', pieces: [piece(1, Buffer.from('world'))], forget: [] });
    const taken = hashes.takePieces();
    assert.equal(taken.reduce((sum, p) => sum + p.byteLength, 0), 16);
    assert.deepEqual(taken.map((p) => p.byteLength), [6, 5, 5], 'each piece goes back');
    assert.deepEqual(hashes.takePieces(), []);
    const { pairs, lost } = hashes.fill([pairOf(1), pairOf(undefined), pairOf(1)]);
    assert.equal(lost, 1, 'a job is taken once');
    assert.equal(pairs[0]!.primary.sha256, createHash('sha256').update('hello world').digest('hex'));
    assert.equal(pairs[0]!.primary.sha256Job, undefined);
    assert.equal(pairs[1]!.primary.sha256, undefined);
    assert.equal(hashes.size, 1);
  });

  test('forgotten jobs go, and past the bound the oldest are dropped', () => {
    const hashes = new ThreadHashes();
    hashes.add({ type: 'hash', pieces: [piece(1, Buffer.from('a'))], forget: [] });
    hashes.add({ type: 'hash', pieces: [], forget: [1] });
    assert.equal(hashes.size, 0);
    for (let job = 1; job <= MAX_HASH_JOBS + 10; job++) hashes.add({ type: 'hash', pieces: [piece(job, Buffer.from('x'))], forget: [] });
    assert.equal(hashes.size, MAX_HASH_JOBS);
    assert.equal(hashes.fill([pairOf(1)]).lost, 1);
    assert.equal(hashes.fill([pairOf(MAX_HASH_JOBS + 10)]).lost, 0);
  });
});
