/**
 * A library loaded the first time work needs it, not at start. The
 * shadow threads parse HTML, XML and typed gRPC with libraries that
 * cost each thread about 4 MB of heap and 9 MB of RSS once loaded, and
 * most routes compare JSON only.
 *
 * Loading is asynchronous (import()), parsing is not: whoever schedules
 * the work awaits load() first, and the code that parses takes the library
 * with get(), which throws, naming it, when that was forgotten. A failed
 * load (a broken install) is kept: get() then throws its error, so work
 * that needs the library fails and is counted instead of waiting forever.
 */
export class LazyModule<T> {
  private value: T | undefined;
  private failure: Error | undefined;
  private loading: Promise<void> | undefined;

  constructor(
    readonly name: string,
    private readonly importer: () => Promise<T>,
  ) {}

  /** Loaded, or failed to: load() has nothing left to wait for. */
  get settled(): boolean {
    return this.value !== undefined || this.failure !== undefined;
  }

  /** Resolves once loaded or failed; never rejects. */
  load(): Promise<void> {
    this.loading ??= this.importer().then(
      (value) => {
        this.value = value;
      },
      (err: unknown) => {
        this.failure = err instanceof Error ? err : new Error(String(err));
      },
    );
    return this.loading;
  }

  get(): T {
    if (this.value !== undefined) return this.value;
    if (this.failure) throw new Error(`${this.name} could not be loaded: ${this.failure.message}`);
    throw new Error(`${this.name} is not loaded: the caller must await its load() first`);
  }
}
