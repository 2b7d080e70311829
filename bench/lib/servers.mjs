// The processes under test and the upstreams behind them, each started on
// 127.0.0.1 with its own files under the run's temp dir.
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { PRIMARY_BODY, SHADOW_BODY } from './body.mjs';
import { groupMembers, sleep, start } from './procs.mjs';

const HOST = '127.0.0.1';

/** GET url until it answers 200; fails early when the process died. */
export async function waitReady(url, handle, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (handle && (handle.child.exitCode !== null || handle.child.signalCode !== null)) {
      throw new StartError(`${handle.name} exited (${handle.child.exitCode ?? handle.child.signalCode})`, handle.tail);
    }
    const status = await new Promise((resolve) => {
      const req = http.get(url, { agent: false, timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => resolve(err.code ?? err.message));
    });
    if (status === 200) return;
    last = String(status);
    await sleep(100);
  }
  throw new StartError(`${handle?.name ?? url} not ready after ${timeoutMs} ms (last: ${last})`, handle?.tail ?? []);
}

export class StartError extends Error {
  constructor(message, tail) {
    super(tail.length ? `${message}\n    ${tail.slice(-8).join('\n    ')}` : message);
  }
}

// ---- nginx ------------------------------------------------------------------

function nginxConf(prefix, workers, servers) {
  const tmp = join(prefix, 'tmp');
  return `# written by bench/run.mjs
worker_processes ${workers};
daemon off;
master_process on;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} warn;
worker_rlimit_nofile 65536;
events {
  worker_connections 8192;
}
http {
  access_log off;
  server_tokens off;
  default_type application/json;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
${servers}
}
`;
}

async function startNginx(name, prefix, conf, readyUrl) {
  mkdirSync(join(prefix, 'tmp'), { recursive: true, mode: 0o777 });
  const file = join(prefix, 'nginx.conf');
  writeFileSync(file, conf);
  const handle = start(name, 'nginx', ['-p', prefix, '-c', file, '-e', join(prefix, 'error.log')]);
  await waitReady(readyUrl, handle);
  return handle;
}

/** The upstreams: the primary and the normal shadow, both static 300-byte JSON. */
export async function startUpstreams(dir, { primaryPort, shadowPort, workers }) {
  const serve = (port, body) => `
  server {
    listen ${HOST}:${port} reuseport;
    location / {
      return 200 '${body}';
    }
  }`;
  const conf = nginxConf(dir, workers, serve(primaryPort, PRIMARY_BODY) + serve(shadowPort, SHADOW_BODY));
  return startNginx('upstreams (nginx)', dir, conf, `http://${HOST}:${primaryPort}/`);
}

/** nginx as the proxy: upstream keep-alive; with mirrorPort, `mirror` 100%. */
export async function startNginxProxy(dir, { port, primaryPort, mirrorPort, workers }) {
  const mirrorUpstream = mirrorPort
    ? `
  upstream shadow {
    server ${HOST}:${mirrorPort};
    keepalive 64;
  }`
    : '';
  const mirrorLocation = mirrorPort
    ? `
    location = /__mirror {
      internal;
      proxy_pass http://shadow$request_uri;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Shadow-Request 1;
    }`
    : '';
  const servers = `
  upstream primary {
    server ${HOST}:${primaryPort};
    keepalive 64;
  }${mirrorUpstream}
  server {
    listen ${HOST}:${port} reuseport;
    location / {${mirrorPort ? '\n      mirror /__mirror;' : ''}
      proxy_pass http://primary;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }${mirrorLocation}
  }`;
  return startNginx('nginx proxy', dir, nginxConf(dir, workers, servers), `http://${HOST}:${port}/`);
}

// ---- Node servers -------------------------------------------------------------

const benchDir = new URL('..', import.meta.url).pathname;

export async function startSlowShadow({ port, delayMs }) {
  const handle = start('slow shadow', process.execPath, [join(benchDir, 'slow-shadow.mjs'), '--port', String(port), '--delay', String(delayMs)]);
  await waitReady(`http://${HOST}:${port}/`, handle);
  return handle;
}

export async function startBareProxy({ port, primaryPort, shadowPort, nodeArgs = [], onOutput }) {
  const args = [...nodeArgs, join(benchDir, 'bare-proxy.mjs'), '--port', String(port), '--target', `http://${HOST}:${primaryPort}`];
  if (shadowPort) args.push('--shadow', `http://${HOST}:${shadowPort}`);
  const handle = start('bare proxy', process.execPath, args, { onLine: onOutput });
  await waitReady(`http://${HOST}:${port}/`, handle);
  return handle;
}

/**
 * A --node-variant's words: VAR=VALUE words are environment variables
 * (MALLOC_ARENA_MAX=2), the others node flags (--max-semi-space-size=4).
 */
export function variantWords(text) {
  const words = text.split(/\s+/).filter(Boolean);
  const isEnv = (word) => /^[A-Z_][A-Z0-9_]*=/.test(word);
  const env = Object.fromEntries(words.filter(isEnv).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]));
  return { words, flags: words.filter((w) => !isEnv(w)), env };
}

/** The config a gatewayctl setup runs with: one route, maybe one shadow. */
export function gatewayConfig({ port, adminPort, primaryPort, shadowPort, accessLog, endpoints }) {
  const lines = [
    '# written by bench/run.mjs',
    `listen: ${HOST}:${port}`,
    `admin: ${HOST}:${adminPort}`,
    'upstreams:',
    // Several endpoints: the same upstream process under different names, so
    // only the pool's picking and per-endpoint connections are priced.
    endpoints
      ? `  primary: { endpoints: [${Array.from({ length: endpoints }, (_, i) => `{ url: "http://${HOST}:${primaryPort}", name: e${i} }`).join(', ')}] }`
      : `  primary: http://${HOST}:${primaryPort}`,
  ];
  if (accessLog) lines.push('accessLog: { path: access.log, format: json }');
  if (shadowPort) lines.push(`  shadow: http://${HOST}:${shadowPort}`);
  lines.push('routes:', '  - name: bench', '    backends:', '      - upstream: primary');
  // 100% of GET requests; comparison is on by default for a shadowed route.
  if (shadowPort) lines.push('    shadow:', '      - upstream: shadow', '        percent: 100');
  lines.push('timeouts:', '  drain: 2s');
  return lines.join('\n') + '\n';
}

/**
 * `gatewayctl serve` from this checkout. Resolves with the handle once the
 * listening line was logged and the proxy answers. With workers, checks that
 * more than one process serves; if not, throws NotSupportedError.
 */
export async function startGateway(dir, { root, port, adminPort, primaryPort, shadowPort, workers, accessLog, endpoints, nodeArgs = [], env, onOutput }) {
  mkdirSync(dir, { recursive: true });
  const configFile = join(dir, 'gateway.yaml');
  writeFileSync(configFile, gatewayConfig({ port, adminPort, primaryPort, shadowPort, accessLog, endpoints }));
  const args = [...nodeArgs, join(root, 'bin/gatewayctl'), 'serve', '-c', configFile, '--log-format', 'json', '--log-level', 'info'];
  if (workers) args.push('--workers', String(workers));
  let listening;
  const listened = new Promise((resolve) => (listening = resolve));
  const handle = start(workers ? `gatewayctl --workers ${workers}` : 'gatewayctl', process.execPath, args, {
    cwd: dir,
    // Variables added to this process's environment (a variant's MALLOC_ARENA_MAX, say).
    ...(env ? { env: { ...process.env, ...env } } : {}),
    onLine(line, label) {
      onOutput?.(line, label);
      if (!line.includes('gateway.listening')) return;
      try {
        const record = JSON.parse(line);
        if (record.event === 'gateway.listening') listening(record);
      } catch {
        // not JSON: ignore
      }
    },
  });
  const outcome = await Promise.race([
    listened,
    handle.exited.then((e) => ({ exited: e })),
    sleep(20_000).then(() => ({ timedOut: true })),
  ]);
  if (outcome.exited || outcome.timedOut) {
    await handle.stop(1000);
    const why = outcome.exited ? `exited with ${outcome.exited.code ?? outcome.exited.signal}` : 'logged no gateway.listening line within 20 s';
    const Err = workers ? NotSupportedError : StartError;
    throw new Err(`${handle.name} ${why}`, handle.tail);
  }
  const listenPort = outcome.listen?.port ?? port;
  try {
    await waitReady(`http://${HOST}:${listenPort}/`, handle);
  } catch (err) {
    await handle.stop(1000);
    throw err;
  }
  if (workers) {
    // Workers may come up after the first listening line: give them a moment.
    let members = [];
    for (let i = 0; i < 30; i++) {
      members = groupMembers([handle.pid]);
      if (members.length >= 2) break;
      await sleep(100);
    }
    if (members.length < 2) {
      await handle.stop(1000);
      throw new NotSupportedError(`--workers ${workers} started a single process`, []);
    }
  }
  return { ...handle, port: listenPort, adminPort: outcome.admin?.port ?? adminPort };
}

export class NotSupportedError extends StartError {}

/** A few counters from the admin /metrics page (shadow outcomes, comparisons). */
export async function shadowCounters(adminPort) {
  const text = await new Promise((resolve) => {
    const req = http.get(`http://${HOST}:${adminPort}/metrics`, { agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (t) => (body += t));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(''));
  });
  const out = {};
  for (const m of text.matchAll(/^gatewayctl_shadow_requests_total\{[^}]*outcome="(\w+)"[^}]*\} (\S+)$/gm)) {
    out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
  }
  for (const m of text.matchAll(/^gatewayctl_shadow_comparisons_total\{[^}]*result="(\w+)"[^}]*\} (\S+)$/gm)) {
    out[`compared_${m[1]}`] = (out[`compared_${m[1]}`] ?? 0) + Number(m[2]);
  }
  return out;
}
