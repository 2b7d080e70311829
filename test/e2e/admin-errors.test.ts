/**
 * The admin API's one error handler: whatever a route throws, the answer
 * is `{error, code}` with the HTTP status the catalogue gives the code;
 * anything that is not a catalogue error is a logged 500 GW_INTERNAL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AdminServer } from '../../src/admin/server.js';
import { ERROR_CATALOGUE, GatewayError, type ErrorCode } from '../../src/errors.js';
import { Logger, type LogRecord } from '../../src/log/logger.js';
import { request } from '../helpers/http.js';

describe('admin API error answers', () => {
  const logs: LogRecord[] = [];
  let admin: AdminServer;
  let base: string;

  before(async () => {
    admin = new AdminServer(
      {
        ready: () => true,
        metrics: async () => ({ contentType: 'text/plain', text: '' }),
        config: () => ({}),
        reload: async () => ({ status: 200, body: {} }),
        extraRoutes: [
          {
            method: 'GET',
            path: '/throw/',
            requiresToken: false,
            handle: (_req, _res, url) => {
              throw new GatewayError(url.pathname.slice('/throw/'.length) as ErrorCode, 'thrown by the route');
            },
          },
          {
            method: 'GET',
            path: '/bug',
            requiresToken: false,
            handle: async () => {
              throw new TypeError('a bug');
            },
          },
          { method: 'POST', path: '/guarded', requiresToken: true, handle: () => assert.fail('not reached') },
        ],
      },
      new Logger((r) => logs.push(r), 'debug'),
      'admin-errors-token',
    );
    base = `http://127.0.0.1:${(await admin.listen('127.0.0.1', 0)).port}`;
  });
  after(() => admin.close());

  test('a thrown catalogue error answers with its code and the catalogue status, for every code', async () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) {
      const r = await request(`${base}/throw/${code}`);
      assert.equal(r.status, entry.http, code);
      assert.deepEqual(r.json(), { error: 'thrown by the route', code });
    }
  });

  test('anything else is a 500 GW_INTERNAL, logged, with nothing of the fault in the answer', async () => {
    const r = await request(`${base}/bug`);
    assert.equal(r.status, 500);
    assert.deepEqual(r.json(), { error: 'internal error', code: 'GW_INTERNAL' });
    assert.ok(logs.some((l) => l.message.includes('a bug')));
  });

  test("the server's own refusals go through the same mapping", async () => {
    const missing = await request(`${base}/nothing-here`);
    assert.equal(missing.status, 404);
    assert.equal(missing.json().code, 'GW_NOT_FOUND');
    const method = await request(`${base}/healthz`, { method: 'DELETE', headers: { 'x-requested-by': 'test' } });
    assert.equal(method.status, 405);
    assert.equal(method.headers['allow'], 'GET');
    assert.equal(method.json().code, 'GW_METHOD_NOT_ALLOWED');
    const token = await request(`${base}/guarded`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    assert.equal(token.status, 401);
    assert.equal(token.headers['www-authenticate'], 'Bearer');
    assert.equal(token.json().code, 'GW_UNAUTHORIZED');
    const host = await request(`${base}/healthz`, { headers: { host: 'attacker.example' } });
    assert.equal(host.status, 403);
    assert.equal(host.json().code, 'GW_FORBIDDEN');
  });
});
