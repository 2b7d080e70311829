/**
 * The error catalogue: every code has an HTTP status and an exit status,
 * the README's error table lists exactly the catalogue (both ways, with the
 * same statuses), the CLI's exit codes come from it, and the errors the
 * request and shadow paths raise are in it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { exitCodeFor } from '../../src/cli/exit-codes.js';
import { answerCode, ERROR_CATALOGUE, ErrorCodes, GatewayError, httpStatusOf, isGatewayError, type ErrorCode } from '../../src/errors.js';
import { UpstreamTimeoutError } from '../../src/upstream/deadlines.js';
import { ShadowTimeoutError } from '../../src/shadow/clients.js';
import { REPO_ROOT } from '../helpers/cli.js';

const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

/** The rows of the README's "## Errors" table: code, meaning, HTTP, exit. */
function readmeTable(): Map<string, { meaning: string; http: number; exit: number }> {
  const section = readme.slice(readme.indexOf('\n## Errors\n'), readme.indexOf('\n## ', readme.indexOf('\n## Errors\n') + 5));
  const rows = new Map<string, { meaning: string; http: number; exit: number }>();
  for (const line of section.split('\n')) {
    const m = /^\| `(GW_[A-Z_]+)` \| (.+) \| (\d{3}) \| (\d) \|$/.exec(line);
    if (m) rows.set(m[1]!, { meaning: m[2]!, http: Number(m[3]), exit: Number(m[4]) });
  }
  return rows;
}

const catalogue = Object.entries(ERROR_CATALOGUE) as [ErrorCode, (typeof ERROR_CATALOGUE)[ErrorCode]][];

describe('error catalogue', () => {
  test('every code has a real HTTP status and an exit status of 1 or 2', () => {
    assert.ok(catalogue.length >= 19);
    for (const [code, entry] of catalogue) {
      assert.ok(STATUS_CODES[entry.http] && entry.http >= 400, `${code}: HTTP ${entry.http}`);
      assert.ok(entry.exit === 1 || entry.exit === 2, `${code}: exit ${entry.exit}`);
    }
  });

  test('ErrorCodes names exactly the catalogue', () => {
    assert.deepEqual(new Set(Object.values(ErrorCodes)), new Set(Object.keys(ERROR_CATALOGUE)));
  });

  test('every catalogue code is in the README table, with its HTTP status and exit', () => {
    const table = readmeTable();
    for (const [code, entry] of catalogue) {
      const row = table.get(code);
      assert.ok(row, `${code} is missing from the README's error table`);
      assert.deepEqual(row, { meaning: entry.meaning, http: entry.http, exit: entry.exit }, code);
    }
  });

  test('every code in the README table is in the catalogue', () => {
    const table = readmeTable();
    assert.ok(table.size > 0, 'the README error table was not found');
    for (const code of table.keys()) assert.ok(code in ERROR_CATALOGUE, `${code} is in the README but not in errors.ts`);
    // And no code is mentioned anywhere in the README that the catalogue lacks.
    for (const [code] of readme.matchAll(/\bGW_[A-Z_]+\b/g)) assert.ok(code in ERROR_CATALOGUE, `README mentions ${code}`);
  });

  test('the CLI exits with the catalogue exit status', () => {
    for (const [code, entry] of catalogue) assert.equal(exitCodeFor(new GatewayError(code, 'x')), entry.exit, code);
    assert.equal(exitCodeFor(new Error('not ours')), 1);
  });

  test('the answers the gateway gives itself carry a code of their own status', () => {
    for (const status of [400, 401, 403, 404, 405, 500, 502, 503, 504]) assert.equal(httpStatusOf(answerCode(status)), status, String(status));
    // Other refusals keep their precise status and the family's code.
    assert.equal(answerCode(413), 'GW_BAD_REQUEST');
    assert.equal(answerCode(431), 'GW_BAD_REQUEST');
    assert.equal(answerCode(501), 'GW_INTERNAL');
  });

  test('the timeouts raised on the request and shadow paths are catalogue errors', () => {
    const upstream = new UpstreamTimeoutError('response');
    const shadow = new ShadowTimeoutError(250);
    assert.ok(isGatewayError(upstream) && isGatewayError(shadow));
    assert.equal(upstream.code, 'GW_UPSTREAM_TIMEOUT');
    assert.equal(shadow.code, 'GW_SHADOW_TIMEOUT');
    assert.equal(httpStatusOf(upstream.code), 504);
    assert.equal(shadow.name, 'TimeoutError');
  });
});
