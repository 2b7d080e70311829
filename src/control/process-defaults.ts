/**
 * The process settings `serve` runs with unless the operator chose others:
 * the ones the systemd unit sets (config/gatewayctl.service). Node and
 * glibc read them only when a process starts, so a process can choose them
 * for its children and, where Node can replace the running program
 * (process.execve: Node 22.15 and later, on POSIX), for itself: `serve`
 * starts itself over with them before it has opened anything, with the
 * same pid, arguments and standard streams. On Node 20 a single-process
 * gateway has them only from its environment; the workers that
 * `serve --workers N` forks get them either way.
 *
 * MALLOC_ARENA_MAX=2: glibc gives each thread that allocates an arena of
 * its own (up to eight per core), and memory freed in one is not reused by
 * another. Bounded at two, proxying 150 KB answers at 100 req/s, the
 * serving thread spent 1.38-1.78 ms an answer against 2.00-3.17 ms, and
 * 0.22-0.52 against 0.66-1.47 ms of it in the kernel (the bare
 * http-proxy-3 script: 1.24-1.50 ms, with or without the bound); 6 MB
 * shadow answers peaked at 149-152 against 155-161 MB (bench/README.md,
 * "Allocator arenas and the serving thread"). A fixed trim threshold
 * (MALLOC_TRIM_THRESHOLD_) was measured too and is not set: it helped in
 * some processes and not in others, and added 4 MB.
 *
 * --max-semi-space-size=8 (in NODE_OPTIONS, so forked workers have it
 * too): Node 22 and 24 let the serving thread's young generation grow to
 * 128 MB. Both settings together, on Node 24 at a paced rate: 109-119
 * against 124-131 MB without a shadow, 161-172 against 197-204 with a
 * compared one, 177-189 against 212-215 with a 500 ms one, at 0.89-1.02x
 * the CPU per request (bench/README.md, "Node 24, and serve taking the
 * unit's settings"). Node 20 reads the same with or without the bound.
 */
import { isSea } from 'node:sea';
import { isMainThread } from 'node:worker_threads';
import type { Logger } from '../log/logger.js';

/** The young-generation bound, as V8 reads it from NODE_OPTIONS. */
export const SEMI_SPACE_OPTION = '--max-semi-space-size=8';

/** glibc's settings, Linux only: elsewhere the variable means nothing. */
export const ALLOCATOR_DEFAULTS: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
};

/** Set in the environment of a process that started itself over: what it added, for its log. */
const RESTARTED_WITH = 'GATEWAYCTL_RESTARTED_WITH';

export interface ProcessFacts {
  readonly env: NodeJS.ProcessEnv;
  /** Node's own options on the command line (process.execArgv). */
  readonly execArgv: readonly string[];
  readonly platform: NodeJS.Platform;
}

const currentProcess = (): ProcessFacts => ({ env: process.env, execArgv: process.execArgv, platform: process.platform });

/**
 * The environment entries a process started with `facts` lacks: each
 * default the operator has not set (even empty), and the semi-space bound
 * unless Node already has one from its command line or NODE_OPTIONS.
 */
export function missingDefaults(facts: ProcessFacts = currentProcess()): Record<string, string> {
  const out: Record<string, string> = {};
  if (facts.platform === 'linux') {
    for (const [name, value] of Object.entries(ALLOCATOR_DEFAULTS)) if (facts.env[name] === undefined) out[name] = value;
  }
  const nodeOptions = facts.env['NODE_OPTIONS'];
  const bounded = [...facts.execArgv, ...(nodeOptions ?? '').split(/\s+/)].some((o) => /^--max[-_]semi[-_]space[-_]size\b/.test(o));
  if (!bounded) out['NODE_OPTIONS'] = nodeOptions?.trim() ? `${nodeOptions.trim()} ${SEMI_SPACE_OPTION}` : SEMI_SPACE_OPTION;
  return out;
}

/** The defaults `names` (from missingDefaults) stand for, as an operator would write them. */
export function describeDefaults(names: readonly string[]): string {
  return names.map((n) => (n === 'NODE_OPTIONS' ? SEMI_SPACE_OPTION : `${n}=${ALLOCATOR_DEFAULTS[n] ?? ''}`)).join(' and ');
}

/**
 * The arguments that start this program over: the Node binary, its own
 * options and the script with its arguments; a single-file binary has no
 * script, and Node puts the binary's path in argv[1] of it.
 */
export function restartArguments(execPath: string, execArgv: readonly string[], argv: readonly string[], singleFile: boolean): string[] {
  return singleFile ? [execPath, ...argv.slice(2)] : [execPath, ...execArgv, ...argv.slice(1)];
}

export type RestartOutcome =
  /** Nothing was missing, or this process is one that started itself over: what it added. */
  | { readonly added?: readonly string[] }
  /** It could not start over (Node 20, an inspector attached, execve failed): why, for the log. */
  | { readonly missing: readonly string[]; readonly why: string };

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

/**
 * Starts this process over with the defaults it lacks. Returns only when
 * it does not: then says what it started with, or why it could not.
 * Call before anything is opened or written: nothing of this process
 * survives but its pid and standard streams.
 */
export function restartWithDefaults(): RestartOutcome {
  const marker = process.env[RESTARTED_WITH];
  if (marker !== undefined) {
    // The workers it forks need not see it.
    delete process.env[RESTARTED_WITH];
    return { added: marker.split(',').filter(Boolean) };
  }
  const missing = missingDefaults();
  const names = Object.keys(missing);
  if (names.length === 0) return {};
  const execve = (process as unknown as { execve?: Execve }).execve;
  if (typeof execve !== 'function') return { missing: names, why: `Node ${process.versions.node} cannot start a process over (Node 22.15 and later can)` };
  if (!isMainThread) return { missing: names, why: 'not the main thread' };
  // A debugger attached to this process would lose it.
  if (process.execArgv.some((o) => o.startsWith('--inspect') || o.startsWith('--debug'))) return { missing: names, why: 'an inspector is attached' };
  try {
    execve.call(process, process.execPath, restartArguments(process.execPath, process.execArgv, process.argv, isSea()), {
      ...process.env,
      ...missing,
      [RESTARTED_WITH]: names.join(','),
    });
  } catch (err) {
    return { missing: names, why: `starting over failed: ${(err as Error).message}` };
  }
  return { missing: names, why: 'starting over returned' };
}

/** Says once, at start, which settings this process took, or runs without and why. */
export function reportRestart(outcome: RestartOutcome, logger: Logger): void {
  if ('why' in outcome) {
    logger.info('serve.process', `running without ${describeDefaults(outcome.missing)}: ${outcome.why}; set them in the environment (the systemd unit does)`, {
      missing: outcome.missing,
    });
  } else if (outcome.added?.length) {
    logger.info('serve.process', `started over with ${describeDefaults(outcome.added)}, as the systemd unit sets them; set them in the environment to choose others`, {
      added: outcome.added,
    });
  }
}
