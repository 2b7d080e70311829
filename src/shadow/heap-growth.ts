/**
 * How far a shadowing process lets its V8 heaps grow past what they hold.
 *
 * After each full collection V8 lets a heap grow by a factor it picks from
 * its own speed, up to 4x what survived. A shadowing gateway's heaps hold
 * little (20-35 MB live on the serving thread, 12-20 MB on each shadow
 * thread, with a thousand copies in flight to a slow shadow) but allocate
 * fast, so V8 picked large factors: under a 500 ms shadow the serving
 * thread's old space reached 73 MB committed for 28 MB live, and the
 * process 250 MB (Node 20) and 395 MB (Node 24).
 *
 * Growth of 50% past the live set holds a saturating 100% shadow at 181-189
 * MB (V8's own choice: 231-247 MB); 20% held no less and cost more
 * collections. A gateway that shadows nothing keeps V8's choice: bounded,
 * its plain path spent up to a quarter more CPU per request, for no memory
 * (bench/README.md, "Heap growth").
 *
 * The flag is V8's own and process-wide: set when the first shadow thread
 * starts, it holds for every thread. An operator's own
 * `--heap-growing-percent` (on the command line or in NODE_OPTIONS) wins.
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 50;

const FLAG = '--heap-growing-percent';

/** Sets the growth bound unless the operator gave one; returns the flag in force, or undefined when theirs holds. */
export function boundHeapGrowth(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env['NODE_OPTIONS'] ?? ''): string | undefined {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].some((arg) => arg === FLAG || arg.startsWith(FLAG + '=') || arg.startsWith('--heap_growing_percent'));
  if (given) return undefined;
  const flag = `${FLAG}=${HEAP_GROWING_PERCENT}`;
  setFlagsFromString(flag);
  return flag;
}
