/**
 * The real CLI as a child process, as users run it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './gateway.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = fileURLToPath(new URL('../../../bin/gatewayctl', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gatewayctl ${args.join(' ')} did not finish in time\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 15_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Calls `onLine` with each complete line a child writes. */
export function eachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffered = '';
  stream.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      onLine(line);
    }
  });
}

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly adminUrl: string;
  /** Every JSON log line so far. */
  readonly logs: Record<string, any>[];
  waitForLog(predicate: (line: Record<string, any>) => boolean, timeoutMs?: number): Promise<Record<string, any>>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  readonly exited: Promise<number | null>;
}

/** Starts `gatewayctl serve` with JSON logs and waits until it listens. */
export async function spawnServe(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--log-format', 'json', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, any>[] = [];
  const listeners: (() => void)[] = [];
  let stderr = '';
  eachLine(child.stdout!, (line) => {
    try {
      logs.push(JSON.parse(line));
    } catch {
      logs.push({ raw: line });
    }
    for (const l of [...listeners]) l();
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

  const waitForLog = (predicate: (line: Record<string, any>) => boolean, timeoutMs = 10_000) =>
    new Promise<Record<string, any>>((resolve, reject) => {
      const found = logs.find(predicate);
      if (found) return resolve(found);
      const timer = setTimeout(() => {
        listeners.splice(listeners.indexOf(check), 1);
        reject(new Error(`log line not seen in ${timeoutMs}ms; logs:\n${logs.map((l) => JSON.stringify(l)).join('\n')}\nstderr: ${stderr}`));
      }, timeoutMs);
      const check = () => {
        const hit = logs.find(predicate);
        if (hit) {
          clearTimeout(timer);
          listeners.splice(listeners.indexOf(check), 1);
          resolve(hit);
        }
      };
      listeners.push(check);
      void exited.then(() => {
        if (!logs.find(predicate)) {
          clearTimeout(timer);
          reject(new Error(`gatewayctl serve exited; stderr: ${stderr}`));
        }
      });
    });

  let ready: Record<string, any>;
  try {
    ready = await waitForLog((l) => l.event === 'gateway.listening', options.timeoutMs ?? 15_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    child,
    url: `http://127.0.0.1:${ready.listen.port}`,
    adminUrl: `http://127.0.0.1:${ready.admin.port}`,
    logs,
    waitForLog,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** `gatewayctl serve` on a config given as YAML; `close` stops it and removes the file. */
export async function spawnServeYaml(yaml: string): Promise<ServeProcess & { readonly port: number; close(): Promise<void> }> {
  const tmp = tempDir();
  const file = join(tmp.dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  try {
    const serve = await spawnServe(['-c', file]);
    return {
      ...serve,
      port: Number(new URL(serve.url).port),
      async close() {
        await serve.stop('SIGKILL');
        tmp.remove();
      },
    };
  } catch (err) {
    tmp.remove();
    throw err;
  }
}
