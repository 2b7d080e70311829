/**
 * Files the single-file binary carries inside itself. Run from the source
 * tree these are undefined and the files are read from the repository; the
 * binary's bundler (scripts/build-binary.mjs) replaces this module with one
 * holding their text.
 */
export const EMBEDDED: {
  readonly version?: string;
  readonly demoConfig?: string;
  /** web/console/: file name to text. */
  readonly consoleFiles?: Readonly<Record<string, string>>;
  /** The config validation worker (config/validate-worker.ts), bundled: a binary has no file to start it from. */
  readonly validateWorker?: string;
  /** The shadow threads' body (shadow/shadow-thread.ts), bundled likewise. */
  readonly shadowWorker?: string;
} = {};
