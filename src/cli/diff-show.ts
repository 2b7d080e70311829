/**
 * `gatewayctl diff show ID` (or `--route --shadow --kind --path` for a
 * finding): one differing pair in full, as the web console shows it side
 * by side: both answers' status, headers and body, the differing places
 * marked "!" and those that differ only as noise "~". Reads
 * GET /diffs/examples of the first gateway that kept the pair.
 */
import type { ChalkInstance } from 'chalk';
import type { Command } from 'commander';
import { EXAMPLE } from '../admin/answers.js';
import { adminJson } from '../admin/http-client.js';
import type { StoredExample } from '../diff/examples.js';
import { escapeSegment } from '../diff/paths.js';
import type { ExampleBody, ExampleSide, JsonValue, PairExample } from '../diff/types.js';
import { AdminRequestError, UsageError } from '../errors.js';
import { addAdminOptions, adminTargets, type AdminFlags } from './admin-options.js';
import { renderEvent } from './diff.js';
import { EXIT_OK } from './exit-codes.js';
import { terminalOutput } from './output.js';

interface ShowFlags extends AdminFlags {
  route?: string;
  shadow?: string;
  kind?: string;
  path?: string;
  json?: boolean;
}

export function registerDiffShow(diff: Command, run: (action: () => Promise<number>) => void): void {
  addAdminOptions(diff.command('show').argument('[id]', 'event id (the "id" of `gatewayctl diff --json`)').description('one differing pair in full: both answers side by side'))
    .option('--route <name>', 'with --shadow, --kind and --path: the latest pair of that finding')
    .option('--shadow <upstream>', 'shadow target of the finding')
    .option('--kind <kind>', 'kind of the finding (status, header, body, error, ...)')
    .option('--path <template>', 'path of the finding as `diff summary` shows it ("" for a whole body)')
    .option('--json', 'print {event, example} as JSON')
    .addHelpText(
      'after',
      `
Gateways keep the pairs of their most recent differing events and the
latest pair of each finding; older ones are gone (exit 1).

Examples:
  gatewayctl diff show 3f2a9c1e-42
  gatewayctl diff show --route api --shadow shop-v2 --kind body --path '/hits/*/price'`,
    )
    .action((id: string | undefined, flags: ShowFlags) => run(() => showCommand(id, flags, diff.opts<AdminFlags>())));
}

export async function showCommand(id: string | undefined, flags: ShowFlags, inherited: AdminFlags = {}): Promise<number> {
  const { urls, access } = adminTargets(flags, inherited);
  const finding = flags.route !== undefined || flags.shadow !== undefined || flags.kind !== undefined || flags.path !== undefined;
  if (id !== undefined && finding) throw new UsageError('give an event id or --route/--shadow/--kind/--path, not both');
  if (id === undefined && !(flags.route && flags.shadow && flags.kind && flags.path !== undefined)) {
    throw new UsageError('give an event id, or all of --route, --shadow, --kind and --path');
  }
  const path =
    id !== undefined
      ? `/diffs/examples/${encodeURIComponent(id)}`
      : `/diffs/examples?${new URLSearchParams({ route: flags.route!, shadow: flags.shadow!, kind: flags.kind!, path: flags.path! })}`;
  let found: StoredExample | undefined;
  let lastError: AdminRequestError | undefined;
  for (const url of urls) {
    try {
      found = await adminJson<StoredExample>(url.href, path, access, EXAMPLE);
      break;
    } catch (err) {
      if (!(err instanceof AdminRequestError) || err.status !== 404) throw err;
      lastError = err;
    }
  }
  if (!found) throw lastError!;
  const io = terminalOutput();
  if (flags.json) io.out(JSON.stringify(found, null, 2));
  else for (const line of renderExample(found, io.color)) io.out(line);
  return EXIT_OK;
}

type Mark = '!' | '~' | ' ';

function marker(example: PairExample): (kind: string, path: string) => Mark {
  const differing = new Set(example.differing.map((m) => `${m.kind}\u0000${m.path}`));
  const noise = new Set(example.noise.map((m) => `${m.kind}\u0000${m.path}`));
  return (kind, path) => (differing.has(`${kind}\u0000${path}`) ? '!' : noise.has(`${kind}\u0000${path}`) ? '~' : ' ');
}

/** Pretty JSON, one line per node; a marked node marks all its lines. */
function jsonLines(value: JsonValue, markOf: (pointer: string) => Mark): { mark: Mark; text: string }[] {
  const out: { mark: Mark; text: string }[] = [];
  const walk = (v: JsonValue, pointer: string, indent: string, label: string, comma: string, inherited: Mark): void => {
    const own = markOf(pointer);
    const mark = own !== ' ' ? own : inherited;
    if (v !== null && typeof v === 'object') {
      const array = Array.isArray(v);
      const entries: [string, JsonValue][] = array ? v.map((x, i) => [String(i), x]) : Object.entries(v);
      const [open, close] = array ? ['[', ']'] : ['{', '}'];
      if (entries.length === 0) return void out.push({ mark, text: `${indent}${label}${open}${close}${comma}` });
      out.push({ mark, text: `${indent}${label}${open}` });
      entries.forEach(([k, child], i) =>
        walk(child, `${pointer}/${escapeSegment(k)}`, indent + '  ', array ? '' : `${JSON.stringify(k)}: `, i < entries.length - 1 ? ',' : '', mark),
      );
      out.push({ mark, text: `${indent}${close}${comma}` });
      return;
    }
    out.push({ mark, text: `${indent}${label}${JSON.stringify(v)}${comma}` });
  };
  walk(value, '', '', '', '', ' ');
  return out;
}

function bodyLines(body: ExampleBody, markOf: (pointer: string) => Mark): { mark: Mark; text: string }[] {
  switch (body.format) {
    case 'json':
      return jsonLines(body.value, markOf);
    case 'text':
      return body.text.split('\n').map((text) => ({ mark: markOf(''), text }));
    case 'binary':
      return [{ mark: markOf(''), text: `(binary, ${body.bytes} bytes, sha256 ${body.sha256})` }];
    case 'empty':
      return [{ mark: ' ', text: '(empty body)' }];
    case 'none':
      return [{ mark: '!', text: `(no answer: ${body.error})` }];
  }
}

function sideLines(role: string, side: ExampleSide, mark: (kind: string, path: string) => Mark, color: ChalkInstance): string[] {
  const paint = (m: Mark, text: string) => (m === '!' ? color.yellow(`! ${text}`) : m === '~' ? color.dim(`~ ${text}`) : `  ${text}`);
  const statusMark = side.status === null ? '!' : mark('status', 'status');
  const lines = [
    color.bold(`${role}: ${side.upstream}`) + color.dim(`  ${side.latencyMs}ms${side.clipped ? ', clipped' : ''}${side.note ? `, ${side.note}` : ''}`),
    paint(statusMark, side.status === null ? 'no answer' : `HTTP ${side.status}`),
  ];
  // A gRPC answer's status is its grpc-status, shown among the headers and trailers.
  for (const [name, value] of Object.entries(side.headers)) lines.push(paint(name === 'grpc-status' ? mark('status', name) : mark('header', name), `${name}: ${value}`));
  lines.push('');
  for (const line of bodyLines(side.body, (pointer) => mark('body', pointer))) lines.push(paint(line.mark, line.text));
  return lines;
}

/** The event's lines, then each side in full. */
export function renderExample(stored: StoredExample, color: ChalkInstance): string[] {
  const mark = marker(stored.example);
  return [
    ...renderEvent(stored.event, color),
    color.dim('  ! differs   ~ noise (differs on the baseline too)'),
    '',
    ...sideLines('primary', stored.example.primary, mark, color),
    '',
    ...sideLines('shadow', stored.example.shadow, mark, color),
  ];
}
