/**
 * paths.escapedSlashes: %2F refused by default; with keep (top level or per
 * route), it stays inside its segment for prefix matching and reaches the
 * upstream as sent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

describe('encoded slashes', () => {
  let projects: TestUpstream;
  let other: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    projects = await startUpstream('projects');
    other = await startUpstream('other');
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { projects: ${projects.url}, other: ${other.url} }
routes:
  - name: projects
    match: { prefix: /api/projects }
    paths: { escapedSlashes: keep }
    backends: [{ upstream: projects }]
  - name: rest
    backends: [{ upstream: other }]
`);
  });
  after(async () => {
    await gw.close();
    await projects.close();
    await other.close();
  });

  test('keep: %2F stays in its segment and reaches the upstream unchanged', async () => {
    const a = await request(gw.url + '/api/projects/group%2Fname/issues?x=1');
    assert.equal(a.status, 200);
    assert.equal(a.json().upstream, 'projects');
    assert.equal(a.json().url, '/api/projects/group%2Fname/issues?x=1');
  });

  test('keep: %2F does not end a segment for prefix matching', async () => {
    // "projects%2Fx" is one segment: not under the /api/projects prefix.
    const a = await request(gw.url + '/api/projects%2Fx');
    assert.equal(a.status, 400, 'the catch-all route rejects it');
  });

  test('keep: a dot segment hidden behind %2F is still refused', async () => {
    for (const path of ['/api/projects/a%2F..%2Fadmin', '/api/projects/%2E%2E%2Fsecret', '/api/projects/x%2F.']) {
      assert.equal((await request(gw.url + path)).status, 400, path);
    }
  });

  test('reject (the default): 400, and nothing reaches the upstream', async () => {
    const before = other.received.length;
    const a = await request(gw.url + '/files/a%2Fb');
    assert.equal(a.status, 400);
    assert.match(a.text, /encoded slash/);
    assert.equal(other.received.length, before);
  });

  test('top level keep applies to every route without its own setting', async () => {
    const top = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { other: ${other.url} }
paths: { escapedSlashes: keep }
routes:
  - name: rest
    backends: [{ upstream: other }]
`);
    try {
      const a = await request(top.url + '/bucket/key%2Fwith%2fslashes');
      assert.equal(a.status, 200);
      assert.equal(a.json().url, '/bucket/key%2Fwith%2Fslashes', 'escapes are upper-cased, as every escape is');
      assert.equal((await request(top.url + '/a%5Cb')).status, 400, 'an encoded backslash is still refused');
    } finally {
      await top.close();
    }
  });
});
