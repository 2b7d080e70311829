/**
 * Reading a config file and parsing its YAML, keeping source positions.
 * Hostile input (huge files, alias bombs, deep nesting) is refused here,
 * quickly and with a clear message.
 */
import { resolve } from 'node:path';
import { isScalar, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { ConfigUnreadableError } from '../errors.js';
import type { Diagnostic } from './diagnostics.js';
import { NotRegularFileError, readRegularFile } from './regular-file.js';

/** Far above any real gateway config, far below what could hurt. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
export const MAX_NESTING = 64;
export const MAX_ALIASES = 100;
/** Entries in any one mapping or list: far above a real config, a bound on validation's work. */
export const MAX_COLLECTION_ITEMS = 10_000;

export interface ConfigSource {
  /** As the user named it: used in messages. */
  readonly file: string;
  readonly text: string;
  /** Set instead of text when the file is over its size limit: never read. */
  readonly oversize?: number;
}

/** What a file of one kind may be: the config, or a file in the same syntax it names (a simulation). */
export interface TextLimits {
  /** The kind, for messages: "config", "simulation". */
  readonly what: string;
  readonly maxBytes: number;
  /** Entries in any one mapping or list. */
  readonly maxItems: number;
}

export const CONFIG_LIMITS: TextLimits = { what: 'config', maxBytes: MAX_CONFIG_BYTES, maxItems: MAX_COLLECTION_ITEMS };

/**
 * A simulation in JSON, as Hoverfly writes it and `record export` prints
 * it, may be far larger than a config: a few hours of recorded calls. Read
 * in one pass (json-nodes.ts), 30 MB of recorded pairs (11,500)
 * took about 2 s and 200 MB of heap; the validation thread's heap bound is
 * 512 MB. One in YAML syntax goes through the config's parser, whose heap
 * grows by about 43 bytes per byte read (4 MB: 1.5 s and 180 MB), so it
 * keeps the config's 4 MB and 10,000 entries.
 */
export const SIMULATION_LIMITS: TextLimits = { what: 'simulation', maxBytes: 32 * 1024 * 1024, maxItems: 50_000 };

export interface ParsedConfig {
  readonly source: ConfigSource;
  readonly doc: Document.Parsed | undefined;
  readonly lines: LineCounter;
  readonly diagnostics: Diagnostic[];
}

/** The config file to use: flag, then $GATEWAYCTL_CONFIG, then ./gateway.yaml. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env['GATEWAYCTL_CONFIG'] ?? 'gateway.yaml';
}

export function readConfigFile(file: string, limits: TextLimits = CONFIG_LIMITS): ConfigSource {
  try {
    const read = readRegularFile(file, limits.maxBytes);
    return 'oversize' in read ? { file, text: '', oversize: read.oversize } : { file, text: read.bytes.toString('utf8') };
  } catch (err) {
    if (err instanceof NotRegularFileError) {
      throw new ConfigUnreadableError(file, `${file}: ${err.message}`);
    }
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new ConfigUnreadableError(file, `${file}: cannot read ${limits.what}: ${why}`, { cause: err });
  }
}

export function absoluteConfigPath(file: string): string {
  return resolve(file);
}

/**
 * Parses YAML text into a document with positions. Syntax errors become
 * diagnostics; the document is returned only when it is usable.
 */
export function parseConfigText(source: ConfigSource, limits: TextLimits = CONFIG_LIMITS): ParsedConfig {
  const lines = new LineCounter();
  const diagnostics: Diagnostic[] = [];
  const at = (offset: number) => {
    const pos = lines.linePos(offset);
    return { line: pos.line, column: pos.col };
  };

  if (source.oversize !== undefined || source.text.length > limits.maxBytes) {
    const size = source.oversize ?? Buffer.byteLength(source.text);
    diagnostics.push({
      severity: 'error',
      code: 'too-large',
      message: `${limits.what} is ${size} bytes; the limit is ${limits.maxBytes} (is this the right file?)`,
      path: '',
      file: source.file,
      line: 1,
      column: 1,
    });
    return { source, doc: undefined, lines, diagnostics };
  }

  // A cheap scan before parsing: nesting deep enough to exhaust the parser's
  // stack is refused without running it.
  const depth = flowNestingDepth(source.text);
  if (depth.depth > MAX_NESTING) {
    const prefix = source.text.slice(0, depth.offset);
    const line = prefix.split('\n').length;
    const column = depth.offset - prefix.lastIndexOf('\n');
    diagnostics.push({
      severity: 'error',
      code: 'too-deep',
      message: `nesting deeper than ${MAX_NESTING} levels`,
      path: '',
      file: source.file,
      line,
      column,
    });
    return { source, doc: undefined, lines, diagnostics };
  }

  let doc: Document.Parsed;
  try {
    doc = parseDocument(source.text, {
      lineCounter: lines,
      prettyErrors: false,
      // The parser's own check compares each key with every earlier one:
      // 20,000 keys take seconds, 100,000 minutes. Checked below in one pass.
      uniqueKeys: false,
      strict: true,
      merge: false,
      version: '1.2',
    });
  } catch (err) {
    diagnostics.push({
      severity: 'error',
      code: 'yaml',
      message: `cannot parse YAML: ${(err as Error).message}`,
      path: '',
      file: source.file,
      line: 1,
      column: 1,
    });
    return { source, doc: undefined, lines, diagnostics };
  }

  const problems = [...doc.errors, ...collectionProblems(doc, limits.maxItems)].sort((a, b) => a.pos[0] - b.pos[0]);
  const report = (severity: 'error' | 'warning', problem: { pos: [number, number]; message: string }) => {
    const { line, column } = at(problem.pos[0]);
    diagnostics.push({ severity, code: 'yaml', message: yamlMessage(problem.message), path: '', file: source.file, line, column });
  };
  for (const problem of problems) report('error', problem);
  for (const problem of doc.warnings) report('warning', problem);
  return { source, doc: problems.length === 0 ? doc : undefined, lines, diagnostics };
}

/**
 * Repeated keys in any mapping, as the parser's uniqueKeys check reports
 * them (equal scalar values; the later key is the one reported), in time
 * linear in the document's size; and mappings or lists over
 * MAX_COLLECTION_ITEMS entries.
 */
function collectionProblems(doc: Document.Parsed, maxItems: number): { message: string; pos: [number, number] }[] {
  const found: { message: string; pos: [number, number] }[] = [];
  const tooMany = (kind: string, items: number, range: readonly number[] | null | undefined) =>
    found.push({ message: `a ${kind} of ${items} entries; the limit is ${maxItems}`, pos: [range?.[0] ?? 0, range?.[1] ?? 0] });
  visit(doc, {
    Seq(_, seq) {
      if (seq.items.length > maxItems) tooMany('list', seq.items.length, seq.range);
    },
    Map(_, map) {
      if (map.items.length > maxItems) {
        tooMany('mapping', map.items.length, map.range);
        return;
      }
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key = pair.key;
        if (!isScalar(key)) continue;
        if (seen.has(key.value)) found.push({ message: 'Map keys must be unique', pos: [key.range?.[0] ?? 0, key.range?.[1] ?? 0] });
        else seen.add(key.value);
      }
    },
  });
  return found;
}

/** The parser's messages carry a position suffix; ours are positioned already. */
function yamlMessage(message: string): string {
  const first = message.split('\n')[0] ?? message;
  return first.replace(/ at line \d+, column \d+:?$/, '').trim();
}

/**
 * Deepest nesting of flow collections ([ { ) and block indentation levels,
 * approximated without parsing, with the offset where it was reached.
 */
function flowNestingDepth(text: string): { depth: number; offset: number } {
  let depth = 0;
  let max = 0;
  let maxAt = 0;
  let quote: string | undefined;
  let comment = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (comment) {
      if (c === '\n') comment = false;
      continue;
    }
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'") {
      const prev = text[i - 1];
      if (prev === undefined || prev === ' ' || prev === '[' || prev === '{' || prev === ',' || prev === ':' || prev === '\n') {
        quote = c;
      }
    } else if (c === '#') {
      const prev = text[i - 1];
      if (prev === undefined || prev === ' ' || prev === '\n' || prev === '\t') comment = true;
    } else if (c === '[' || c === '{') {
      depth++;
      if (depth > max) {
        max = depth;
        maxAt = i;
      }
      if (max > MAX_NESTING) break;
    } else if ((c === ']' || c === '}') && depth > 0) {
      depth--;
    }
  }
  // Block nesting: each level needs at least one more space of indentation.
  if (max <= MAX_NESTING) {
    let offset = 0;
    for (const line of text.split('\n')) {
      const indent = /^( *- +| +)*/.exec(line)![0].length;
      if (indent > MAX_NESTING * 2) return { depth: MAX_NESTING + 1, offset: offset + indent };
      offset += line.length + 1;
    }
  }
  return { depth: max, offset: maxAt };
}
