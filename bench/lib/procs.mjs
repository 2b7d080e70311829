// Child processes for the benchmark: every one is registered so that it is
// killed on every way out (normal end, error, Ctrl-C), and measured through
// /proc (RSS and CPU time summed over its process group).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';

const live = new Set();
let cleanupHooks = [];

/** Kills every registered process group at once (synchronous: safe in 'exit'). */
export function killAll() {
  for (const child of live) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
  const hooks = cleanupHooks;
  cleanupHooks = [];
  for (const hook of hooks) {
    try {
      hook();
    } catch {
      // best effort
    }
  }
}

/** Runs fn (synchronously) at the very end, after the processes are killed. */
export function onCleanup(fn) {
  cleanupHooks.push(fn);
}

let installed = false;
export function installCleanup() {
  if (installed) return;
  installed = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}: stopping every process started\n`);
      killAll();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`bench: ${err?.stack ?? err}\n`);
    killAll();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`bench: ${err?.stack ?? err}\n`);
    killAll();
    process.exit(1);
  });
}

/**
 * Starts a command in its own process group (so its workers can be found and
 * killed together) and registers it. stdout/stderr lines go to onLine.
 */
export function start(name, command, args, { cwd, env, onLine } = {}) {
  const child = spawn(command, args, {
    cwd,
    env: env ?? process.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const tail = [];
  const feed = (stream, label) => {
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (text) => {
      buffered += text;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        tail.push(`${label}: ${line}`);
        if (tail.length > 20) tail.shift();
        onLine?.(line, label);
      }
    });
  };
  feed(child.stdout, 'out');
  feed(child.stderr, 'err');
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      live.delete(child);
      resolve({ code: -1, signal: null, error: err });
    });
  });
  return { name, child, pid: child.pid, exited, tail, stop: (ms) => stop(child, exited, ms) };
}

/** SIGTERM the group, SIGKILL it after ms. Resolves when the leader exited. */
async function stop(child, exited, ms = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) {
    killGroup(child.pid, 'SIGKILL');
    return;
  }
  killGroup(child.pid, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), ms);
  await exited;
  clearTimeout(timer);
  // Workers that outlive their leader.
  killGroup(child.pid, 'SIGKILL');
}

function killGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
  } catch {
    // gone
  }
}

/** Runs a bounded command to completion (wrk); registered while it runs. */
export function run(command, args, { timeoutMs }) {
  return new Promise((resolve, reject) => {
    const handle = start(command, command, args);
    let out = '';
    let err = '';
    handle.child.stdout.on('data', (t) => (out += t));
    handle.child.stderr.on('data', (t) => (err += t));
    const timer = setTimeout(() => {
      killGroup(handle.pid, 'SIGKILL');
      reject(new Error(`${command} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    handle.exited.then(({ code, signal, error }) => {
      clearTimeout(timer);
      if (error) reject(error);
      else resolve({ code, signal, stdout: out, stderr: err });
    });
  });
}

/** A free TCP port on 127.0.0.1 (the OS picks; we close and hand it on). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export function commandExists(name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;
}

// ---- /proc sampling -------------------------------------------------------

const CLK_TCK = Number((spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout ?? '').trim()) || 100;

function readStat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces: fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
    return { pgrp: Number(fields[2]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

/**
 * Other processes that use the CPU now: each process's CPU time over
 * `sampleMs`, those at `minShare` of a core or more, busiest first. A
 * forgotten server or a build left running costs every setup of a run
 * alike, but it shifts the absolute figures and widens the rounds' spread,
 * so a report names it.
 */
export async function busyNeighbours({ sampleMs = 1000, minShare = 0.01 } = {}) {
  const before = everyProcess();
  await new Promise((resolve) => setTimeout(resolve, sampleMs));
  const busy = [];
  for (const [pid, { ticks }] of everyProcess()) {
    if (pid === process.pid || !before.has(pid)) continue;
    const share = (ticks - before.get(pid).ticks) / CLK_TCK / (sampleMs / 1000);
    if (share >= minShare) busy.push({ pid, share, command: commandOf(pid) });
  }
  return busy.sort((a, b) => b.share - a.share);
}

/** busyNeighbours() as one line for a report: "none", or "node (pid 11528) 1.2%, …". */
export function describeNeighbours(busy) {
  if (busy.length === 0) return 'none';
  return busy.map((b) => `${b.command} (pid ${b.pid}) ${(b.share * 100).toFixed(1)}%`).join(', ');
}

function commandOf(pid) {
  try {
    const words = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const text = words.map((w, i) => (i === 0 ? w.split('/').pop() : w)).join(' ');
    return text.length > 80 ? `${text.slice(0, 77)}...` : text || readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/** Every process now (a scan of /proc): pid to its process group and CPU ticks. */
function everyProcess() {
  const out = new Map();
  for (const entry of readdirSync('/proc')) {
    const c = entry.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const stat = readStat(entry);
    if (stat) out.set(Number(entry), stat);
  }
  return out;
}

/** Every pid whose process group is one of pgids. */
export function groupMembers(pgids) {
  const wanted = new Set(pgids);
  const out = [];
  for (const [pid, stat] of everyProcess()) if (wanted.has(stat.pgrp)) out.push(pid);
  return out;
}

/** CPU seconds used so far by these pids (utime + stime). */
export function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / CLK_TCK;
}

/** Resident set size of one pid, in bytes (0 when gone). */
export function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Samples the RSS of a set of pids every intervalMs until stopped: the peak
 * of the sum, and the peak of any single process. setPids() swaps the set
 * (workers that appear later).
 */
export function sampleRss(initialPids, intervalMs = 200) {
  let pids = initialPids;
  let peakTotal = 0;
  let peakOne = 0;
  const sample = () => {
    let total = 0;
    for (const pid of pids) {
      const rss = rssBytes(pid);
      total += rss;
      if (rss > peakOne) peakOne = rss;
    }
    if (total > peakTotal) peakTotal = total;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    setPids(next) {
      pids = next;
      sample();
    },
    stop() {
      clearInterval(timer);
      sample();
      return { peakTotal, peakOne };
    },
  };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** CPU ticks (1/100 s) of each thread of a process, by thread id less the pid (0 is the main thread). */
export function threadTicks(pid) {
  const out = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid) - pid, Number(fields[11]) + Number(fields[12]));
    } catch {
      // the thread ended
    }
  }
  return out;
}
