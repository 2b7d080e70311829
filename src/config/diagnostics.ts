/**
 * A problem found in a config file, located like a compiler would: the
 * 1-based line and column of the offending YAML node, and its config path
 * (`routes[0].backends[1].weight`).
 */
export type Severity = 'error' | 'warning';

export interface Diagnostic {
  readonly severity: Severity;
  /** Stable identifier of the kind of problem, e.g. `unknown-key`. */
  readonly code: string;
  readonly message: string;
  /** Config path of the node, `` for the document itself. */
  readonly path: string;
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** Errors first, then by position, so output reads top to bottom. */
export function sortDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort(
    (a, b) => a.line - b.line || a.column - b.column || (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1),
  );
}

/** `FILE:LINE:COL: error: MESSAGE`, the line compilers and editors understand. */
export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.column}: ${d.severity}: ${d.message}`;
}

/**
 * A short code frame under a diagnostic: the offending line with one line of
 * context each side, and a caret under the column.
 */
export function codeFrame(source: string, line: number, column: number, context = 1): string[] {
  const lines = source.split(/\r?\n/);
  if (line < 1 || line > lines.length) return [];
  const first = Math.max(1, line - context);
  const last = Math.min(lines.length, line + context);
  const width = String(last).length;
  const out: string[] = [];
  for (let n = first; n <= last; n++) {
    const marker = n === line ? '>' : ' ';
    const text = (lines[n - 1] ?? '').replace(/\t/g, ' ');
    out.push(`${marker} ${String(n).padStart(width)} | ${text.length > 160 ? text.slice(0, 157) + '...' : text}`);
    if (n === line) out.push(`  ${' '.repeat(width)} | ${' '.repeat(Math.max(0, column - 1))}^`);
  }
  return out;
}

/** Levenshtein distance, for "did you mean" hints on near-miss names. */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = prev[j]!;
      prev[j] = Math.min(above + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = above;
    }
  }
  return prev[b.length]!;
}

/** The closest candidate within a small edit distance, if any. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = name.toLowerCase();
  for (const candidate of candidates) {
    const d = editDistance(lower, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const limit = Math.max(1, Math.min(3, Math.floor(name.length / 3)));
  return bestDistance <= limit ? best : undefined;
}

export function didYouMean(name: string, candidates: Iterable<string>): string {
  const hint = closest(name, candidates);
  return hint ? ` (did you mean "${hint}"?)` : '';
}

/** A diagnostic as JSON (validate --json, the admin API's reload answers). */
export function diagnosticJson(d: Diagnostic): Record<string, unknown> {
  return { severity: d.severity, message: d.message, path: d.path, line: d.line, column: d.column, code: d.code };
}
