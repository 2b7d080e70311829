/**
 * glibc malloc settings for the data-plane processes the primary forks
 * (`serve --workers N`), unless the operator set them: glibc reads them
 * only when a process starts, so a process can choose them for its
 * children, never for itself. The systemd unit sets the same for every
 * process it starts (config/gatewayctl.service).
 *
 * MALLOC_ARENA_MAX: glibc gives each thread that allocates an arena of its
 * own (up to eight per core), and memory freed in one is not reused by
 * another. Bounded at two, proxying 150 KB answers at 100 req/s, the
 * serving thread spent 1.38-1.78 ms an answer against 2.00-3.17 ms, and
 * 0.22-0.52 against 0.66-1.47 ms of it in the kernel (the bare
 * http-proxy-3 script: 1.24-1.50 ms, with or without the bound); 6 MB
 * shadow answers peaked at 149-152 against 155-161 MB (bench/README.md,
 * "Allocator arenas and the serving thread"). A fixed trim threshold
 * (MALLOC_TRIM_THRESHOLD_) was measured too and is not set: it helped in
 * some processes and not in others, and added 4 MB.
 */
export const ALLOCATOR_DEFAULTS: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
};

/** The allocator settings a child process should start with: the defaults the operator has not set. */
export function allocatorEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(ALLOCATOR_DEFAULTS)) if (env[name] === undefined) out[name] = value;
  return out;
}
