#!/usr/bin/env node
// Builds patched copies of this checkout's compiled gatewayctl (dist/), one
// per hot-path experiment, each adding one change to the previous, and prints
// the --variant flags that measure them against the unpatched build in one
// run. The patches are string replacements on dist/*.js: nothing under src/
// changes, and a patch whose anchor is gone (the source moved on) is reported
// and its variant and the later ones are skipped.
//
//   node bench/ablate.mjs [--out DIR]
//   npm run bench -- --only bare,gw,gw-shadow $(node bench/ablate.mjs --flags)
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    out: { type: 'string', default: join(os.tmpdir(), 'gatewayctl-ablations') },
    flags: { type: 'boolean', default: false },
  },
});

const HANDLER = 'dist/src/proxy/handler.js';

/** Each step: what it changes, and the replacements that do it. Cumulative. */
const STEPS = [
  {
    name: '1-pipe',
    what: 'ProxyHandler.onUpstreamResponse: proxyRes.pipe(res) and an aborted handler instead of stream.pipeline()',
    edits: [
      {
        file: HANDLER,
        find: `        pipeline(proxyRes, res, (err) => {
            if (err && !res.writableFinished) {
                if (!exchange.upstreamFailed && proxyRes.destroyed && !proxyRes.complete && !req.socket.destroyed) {
                    exchange.upstreamFailed = true;
                    exchange.stats.upstreamError('reset');
                }
                res.destroy();
            }
        });`,
        replace: `        proxyRes.once('aborted', () => {
            if (!res.writableFinished) {
                if (!exchange.upstreamFailed && !req.socket.destroyed) {
                    exchange.upstreamFailed = true;
                    exchange.stats.upstreamError('reset');
                }
                res.destroy();
            }
        });
        proxyRes.pipe(res);`,
      },
    ],
  },
  {
    name: '2-timers',
    what: 'no free-socket timeout on the primary agents, and no per-request setTimeout on a reused upstream socket',
    edits: [
      { file: 'dist/src/proxy/pools.js', find: '                timeout: FREE_SOCKET_TIMEOUT_MS,\n', replace: '' },
      {
        file: HANDLER,
        find: `        else {
            exchange.connected = true;
            proxyReq.setTimeout(responseTimeout, () => proxyReq.destroy(new UpstreamTimeoutError('response')));
        }`,
        replace: `        else {
            exchange.connected = true;
        }`,
      },
    ],
  },
  {
    name: '3-direct',
    what: 'http.request() to the upstream directly instead of http-proxy-3 web() (its only pass in use is "stream")',
    edits: [
      { file: HANDLER, find: "import { randomUUID } from 'node:crypto';", replace: "import { randomUUID } from 'node:crypto';\nimport http from 'node:http';" },
      {
        file: HANDLER,
        find: '        this.proxy.web(req, res, { target: upstream.target, agent: this.pools.agentFor(upstream), selfHandleResponse: true }, this.onForwardError);',
        replace: `        const t = upstream.target;
        const proxyReq = http.request({ hostname: t.hostname, port: t.port, method, path: (t.pathname === '/' ? '' : t.pathname) + req.url, headers: req.headers, agent: this.pools.agentFor(upstream) });
        proxyReq.on('socket', () => this.onUpstreamRequest(proxyReq, req));
        proxyReq.on('response', (proxyRes) => this.onUpstreamResponse(proxyRes, req, res));
        proxyReq.on('error', (err) => this.onForwardError(err, req, res));
        if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) req.pipe(proxyReq);
        else proxyReq.end();`,
      },
    ],
  },
  {
    name: '4-shadow',
    what: "ShadowClients.request: no AbortController and setTimeout per copy (undici's headersTimeout/bodyTimeout bound it)",
    edits: [
      {
        file: 'dist/src/shadow/clients.js',
        find: `        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(new ShadowTimeoutError(copy.timeoutMs)), copy.timeoutMs);
        try {`,
        replace: '        try {',
      },
      { file: 'dist/src/shadow/clients.js', find: '                signal: controller.signal,\n', replace: '' },
      {
        file: 'dist/src/shadow/clients.js',
        find: `            // The timer keeps running while the body is read; clear it when done.
            response.body.once('close', () => clearTimeout(timer));
            response.body.once('end', () => clearTimeout(timer));
            return response;`,
        replace: '            return response;',
      },
      {
        file: 'dist/src/shadow/clients.js',
        find: `            clearTimeout(timer);
            if (controller.signal.aborted)
                throw controller.signal.reason;
            throw err;`,
        replace: '            throw err;',
      },
    ],
  },
  {
    name: '5-dispatch',
    what: "ShadowClients.request: undici dispatch() with a small handler that collects the body, instead of request() and its Readable body",
    edits: [
      {
        file: 'dist/src/shadow/clients.js',
        find: `    async request(upstream, copy) {
        try {
            const response = await this.poolFor(upstream).request({
                method: copy.method,
                path: copy.path,
                headers: copy.headers,
                body: copy.body,
                headersTimeout: copy.timeoutMs,
                bodyTimeout: copy.timeoutMs,
            });
            return response;
        }
        catch (err) {
            throw err;
        }
    }`,
        // The body comes back as an array of chunks (for await takes it) with a dump() that does nothing.
        replace: `    request(upstream, copy) {
        return new Promise((resolve, reject) => {
            const chunks = [];
            let statusCode = 0;
            const headers = {};
            this.poolFor(upstream).dispatch({
                method: copy.method,
                path: copy.path,
                headers: copy.headers,
                body: copy.body,
                headersTimeout: copy.timeoutMs,
                bodyTimeout: copy.timeoutMs,
            }, {
                onConnect() { },
                onHeaders(status, raw) {
                    statusCode = status;
                    for (let i = 0; i < raw.length; i += 2) headers[raw[i].toString('latin1').toLowerCase()] = raw[i + 1].toString('latin1');
                    return true;
                },
                onData(chunk) {
                    chunks.push(chunk);
                    return true;
                },
                onComplete() {
                    chunks.dump = async () => undefined;
                    resolve({ statusCode, headers, body: chunks });
                },
                onError: reject,
            });
        });
    }`,
      },
    ],
  },
];

function log(message) {
  if (!values.flags) process.stderr.write(`${message}\n`);
}

if (!existsSync(join(root, HANDLER))) {
  process.stderr.write('ablate: build first (npm run build)\n');
  process.exit(1);
}
rmSync(values.out, { recursive: true, force: true });
mkdirSync(values.out, { recursive: true });
const built = [];
const done = [];
for (const step of STEPS) {
  const dir = join(values.out, step.name);
  mkdirSync(dir);
  for (const part of ['bin', 'dist', 'package.json']) cpSync(join(root, part), join(dir, part), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  let ok = true;
  for (const edit of [...done, ...step.edits]) {
    const file = join(dir, edit.file);
    const text = readFileSync(file, 'utf8');
    if (!text.includes(edit.find)) {
      log(`ablate: ${step.name}: the code it patches in ${edit.file} has changed; skipping it and the steps after it`);
      ok = false;
      break;
    }
    writeFileSync(file, text.replace(edit.find, edit.replace));
  }
  if (!ok) {
    rmSync(dir, { recursive: true, force: true });
    break;
  }
  done.push(...step.edits);
  built.push(step);
  log(`ablate: ${step.name}: ${step.what} (on top of the ones before)`);
}
const flags = built.map((s) => `--variant ${s.name}=${join(values.out, s.name)}`).join(' ');
if (values.flags) process.stdout.write(`${flags}\n`);
else log(`\nmeasure with:\n  npm run bench -- --only bare,gw,gw-shadow ${flags}`);
