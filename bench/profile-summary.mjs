#!/usr/bin/env node
// Top self-time frames of a V8 .cpuprofile (as written by node --cpu-prof):
// self and total (inclusive) time per function, and self time per module
// (a gatewayctl source file, an npm package, a Node internal area, GC).
//
//   node bench/profile-summary.mjs FILE.cpuprofile [--top 25] [--callers 2] [--requests N] [--json]
//
// --requests N (the requests served while profiling) adds µs per request.
// Samples are wall-clock: on a busy machine, time the process spent
// preempted lands on whatever was on its stack, so compare shares within a
// profile rather than absolute µs across machines.
// --callers N adds, under each function, its N most costly caller chains
// (three frames up), with the share of the total time each accounts for.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const SPECIAL = new Set(['(root)', '(program)', '(idle)', '(garbage collector)']);

/** Where a frame comes from, shortened: dist/src/proxy/handler.js, undici/lib/…, node:internal/… */
export function shortLocation(url) {
  if (!url) return '';
  let u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) return u.slice(nm + '/node_modules/'.length);
  const dist = u.indexOf('/dist/');
  if (dist >= 0) return u.slice(dist + 1);
  const bench = u.indexOf('/bench/');
  if (bench >= 0) return u.slice(bench + 1);
  return u;
}

/** The module a frame is counted under in the per-module table. */
export function moduleOf(frame) {
  const name = frame.functionName;
  if (SPECIAL.has(name)) return name;
  const url = frame.url ?? '';
  if (!url) return '(native / V8 builtins)';
  const nm = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) return `npm ${nm[1]}`;
  const loc = shortLocation(url);
  if (loc.startsWith('dist/')) return `gatewayctl ${loc.slice('dist/'.length)}`;
  if (loc.startsWith('node:')) {
    const parts = loc.split('/');
    return parts.length > 2 ? `${parts.slice(0, 2).join('/')}/…` : loc;
  }
  return loc;
}

/**
 * Self and total time by function. Sample i lasts until sample i + 1
 * (timeDeltas[i + 1]), as the browser's profiler counts it.
 */
export function analyze(profile) {
  const nodes = new Map();
  const parent = new Map();
  for (const node of profile.nodes) {
    nodes.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const keyOf = (node) => {
    const f = node.callFrame;
    const name = f.functionName || '(anonymous)';
    if (SPECIAL.has(name)) return name;
    const loc = shortLocation(f.url);
    return loc ? `${name} ${loc}:${f.lineNumber + 1}` : name;
  };
  const self = new Map();
  const total = new Map();
  const callers = new Map();
  const modules = new Map();
  let all = 0;
  let idle = 0;
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const us = i + 1 < deltas.length ? Math.max(0, deltas[i + 1]) : 0;
    const node = nodes.get(samples[i]);
    if (!node) continue;
    all += us;
    const key = keyOf(node);
    if (key === '(idle)') {
      idle += us;
      continue;
    }
    self.set(key, (self.get(key) ?? 0) + us);
    const mod = moduleOf(node.callFrame);
    modules.set(mod, (modules.get(mod) ?? 0) + us);
    const chain = [];
    for (let id = parent.get(node.id); id !== undefined && chain.length < 3; id = parent.get(id)) {
      const k = keyOf(nodes.get(id));
      if (k === '(root)') break;
      chain.push(k.replace(/ (\S+\/)?([^/ ]+:\d+)$/, ' $2'));
    }
    let byChain = callers.get(key);
    if (!byChain) callers.set(key, (byChain = new Map()));
    const chainKey = chain.join(' < ') || '(top)';
    byChain.set(chainKey, (byChain.get(chainKey) ?? 0) + us);
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const k = keyOf(nodes.get(id));
      if (k === '(root)' || seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + us);
    }
  }
  const busy = all - idle;
  const rank = (map) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([key, us]) => ({ key, ms: us / 1000, pct: busy > 0 ? (100 * us) / busy : 0 }));
  return {
    wallMs: all / 1000,
    busyMs: busy / 1000,
    idlePct: all > 0 ? (100 * idle) / all : 0,
    samples: samples.length,
    self: rank(self),
    modules: rank(modules),
    total: new Map([...total.entries()].map(([k, us]) => [k, busy > 0 ? (100 * us) / busy : 0])),
    callers: new Map([...callers.entries()].map(([k, m]) => [k, rank(m)])),
  };
}

/** Plain-text report: top N functions by self time, then self time per module. */
export function report(profile, { top = 25, title = 'profile', callers = 0, requests = 0 } = {}) {
  const a = analyze(profile);
  const lines = [];
  // With the number of requests served during the profile: cost per request.
  const perReq = (ms) => (requests > 0 ? `${((ms * 1000) / requests).toFixed(1).padStart(7)}  ` : '');
  const perReqHead = requests > 0 ? '  µs/req  ' : '';
  lines.push(
    `${title}: ${(a.wallMs / 1000).toFixed(1)} s sampled, ${a.samples.toLocaleString('en-US')} samples, ` +
      `idle ${a.idlePct.toFixed(1)}%; percentages are of the ${(a.busyMs / 1000).toFixed(2)} s not idle`,
  );
  if (requests > 0) {
    lines.push(
      `${requests.toLocaleString('en-US')} requests: ${((a.busyMs * 1000) / requests).toFixed(1)} µs of non-idle main-thread time per request ` +
        '(wall-clock samples: time the process was preempted counts too)',
    );
  }
  lines.push('', `top ${top} functions by self time:`, `  self%  total%   self ms  ${perReqHead}function  location`);
  for (const row of a.self.slice(0, top)) {
    const totalPct = a.total.get(row.key) ?? row.pct;
    lines.push(
      `  ${row.pct.toFixed(1).padStart(5)}  ${totalPct.toFixed(1).padStart(6)}  ${row.ms.toFixed(0).padStart(8)}  ${perReq(row.ms)}${row.key}`,
    );
    for (const c of (a.callers.get(row.key) ?? []).slice(0, callers)) {
      lines.push(`  ${''.padStart(23 + perReqHead.length)}${c.pct.toFixed(1).padStart(5)}  < ${c.key}`);
    }
  }
  lines.push('', 'self time by module:', `  self%   self ms  ${perReqHead}module`);
  for (const row of a.modules.slice(0, Math.max(12, Math.ceil(top / 2)))) {
    lines.push(`  ${row.pct.toFixed(1).padStart(5)}  ${row.ms.toFixed(0).padStart(8)}  ${perReq(row.ms)}${row.key}`);
  }
  return lines.join('\n') + '\n';
}

function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: 'string', default: '25' },
      callers: { type: 'string', default: '0' },
      requests: { type: 'string', default: '0' },
      json: { type: 'boolean', default: false },
    },
  });
  if (positionals.length === 0) {
    process.stderr.write('usage: profile-summary.mjs FILE.cpuprofile... [--top N] [--callers N] [--requests N] [--json]\n');
    process.exit(2);
  }
  for (const file of positionals) {
    const profile = JSON.parse(readFileSync(file, 'utf8'));
    if (values.json) {
      const a = analyze(profile);
      const top = Number(values.top);
      process.stdout.write(
        JSON.stringify({ file, ...a, self: a.self.slice(0, top), modules: a.modules, total: undefined, callers: undefined }, null, 2) +
          '\n',
      );
    } else {
      const options = { top: Number(values.top), callers: Number(values.callers), requests: Number(values.requests), title: file };
      process.stdout.write(report(profile, options) + '\n');
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
