/**
 * `gatewayctl validate` (the real CLI, spawned) on routes[].diff.protoDescriptors:
 * a descriptor set protoc wrote, files that are not one, and routes whose
 * match prefix names a service or method the set lacks.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/gateway.js';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/grpc');

function config(prefix: string, descriptors: string): string {
  return [
    'upstreams:',
    '  v1: http://127.0.0.1:50051',
    '  v2: http://127.0.0.1:50052',
    'routes:',
    '  - name: catalog',
    `    match: { prefix: ${prefix} }`,
    '    backends: [{ upstream: v1 }]',
    '    shadow: [{ upstream: v2 }]',
    '    diff:',
    `      protoDescriptors: ${descriptors}`,
    '',
  ].join('\n');
}

interface Problem {
  severity: string;
  path: string;
  message: string;
  line: number;
  column: number;
}

describe('validate: diff.protoDescriptors', () => {
  let tmp: ReturnType<typeof tempDir>;
  before(() => {
    tmp = tempDir();
    // Relative to the config file, not to where validate runs.
    mkdirSync(join(tmp.dir, 'protos'));
    copyFileSync(join(FIXTURES, 'catalog.pb'), join(tmp.dir, 'protos', 'catalog.pb'));
    copyFileSync(join(FIXTURES, 'catalog-no-imports.pb'), join(tmp.dir, 'protos', 'no-imports.pb'));
    copyFileSync(join(FIXTURES, 'not-descriptors.pb'), join(tmp.dir, 'protos', 'junk.pb'));
    execFileSync('mkfifo', [join(tmp.dir, 'protos', 'pipe.pb')]);
  });
  after(() => tmp.remove());

  async function validate(prefix: string, descriptors: string): Promise<{ code: number | null; errors: Problem[] }> {
    const file = join(tmp.dir, `gateway-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, config(prefix, descriptors));
    const r = await runCli(['validate', '--json', '-c', file], { cwd: '/' });
    const problems = JSON.parse(r.stdout) as Problem[];
    return { code: r.code, errors: problems.filter((p) => p.severity === 'error') };
  }

  test('a set protoc wrote, declaring the service the route names: valid', async () => {
    const r = await validate('/shop.Catalog/', 'protos/catalog.pb');
    assert.deepEqual(r.errors, []);
    assert.equal(r.code, 0);
    const method = await validate('/shop.Catalog/Watch', 'protos/catalog.pb');
    assert.deepEqual(method.errors, []);
    // A prefix that names no service is not checked against the set.
    assert.deepEqual((await validate('/api', 'protos/catalog.pb')).errors, []);
  });

  test('a service the set lacks: an error at the route prefix, naming what the set declares', async () => {
    const r = await validate('/shop.Orders/', 'protos/catalog.pb');
    assert.equal(r.code, 1);
    assert.deepEqual(
      r.errors.map((e) => [e.path, e.line, e.column]),
      [['routes[0].match.prefix', 6, 22]],
    );
    assert.match(r.errors[0]!.message, /service "shop\.Orders" is not in routes\[0\]\.diff\.protoDescriptors \("protos\/catalog\.pb"\); it declares shop\.Catalog/);
    const method = await validate('/shop.Catalog/Delete', 'protos/catalog.pb');
    assert.match(method.errors[0]?.message ?? '', /method "shop\.Catalog\/Delete" is not in/);
  });

  test('files that are no usable descriptor set: an error at the key, saying why', async () => {
    const cases: [string, RegExp][] = [
      ['protos/junk.pb', /"protos\/junk\.pb" is not a usable descriptor set: not a FileDescriptorSet/],
      ['protos/no-imports.pb', /google\.protobuf\.Timestamp.*protoc --include_imports/],
      ['protos/missing.pb', /"protos\/missing\.pb" does not exist/],
      ['protos', /"protos" is a directory, not a regular file/],
      // Opened non-blocking: a named pipe never hangs validate.
      ['protos/pipe.pb', /"protos\/pipe\.pb" is a named pipe, not a regular file/],
    ];
    for (const [file, message] of cases) {
      const r = await validate('/shop.Catalog/', file);
      assert.equal(r.code, 1, file);
      assert.deepEqual(
        r.errors.map((e) => [e.path, e.line, e.column]),
        [['routes[0].diff.protoDescriptors', 10, 25]],
        file,
      );
      assert.match(r.errors[0]!.message, message);
    }
  });
});
