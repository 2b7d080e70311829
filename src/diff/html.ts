/**
 * HTML bodies as element trees, parsed with parse5 (the WHATWG algorithm,
 * so broken markup parses the way browsers do). Each difference names its
 * node by a readable path such as `html > body > main > p.stock`, or
 * `… > input@value` for one attribute, so a per-request token masks its
 * attribute and nothing else. Comments and whitespace-only text are not
 * compared; each element's own text is compared whitespace-collapsed.
 */
import type * as Parse5 from 'parse5';
import { LazyModule } from '../lazy-module.js';
import type { RawDifference, WalkLimits } from './compare.js';

export interface HtmlNode {
  readonly name: string;
  readonly attrs: Readonly<Record<string, string>>;
  /** The element's own text (not its descendants'), whitespace collapsed. */
  readonly text: string;
  readonly children: readonly HtmlNode[];
}

interface Parse5Node {
  readonly nodeName: string;
  readonly tagName?: string;
  readonly value?: string;
  readonly attrs?: readonly { readonly name: string; readonly value: string }[];
  readonly childNodes?: readonly Parse5Node[];
  readonly content?: Parse5Node;
}

/** Loaded by the first pair with an HTML body (diff/parsers.ts). */
export const PARSE5 = new LazyModule<typeof Parse5>('parse5', () => import('parse5'));

/** Parses and converts at most `maxNodes` elements; `limited` says the rest was left out. PARSE5 must be loaded. */
export function parseHtml(text: string, maxNodes: number): { root: HtmlNode; limited: boolean } {
  const document = PARSE5.get().parse(text) as unknown as Parse5Node;
  let budget = maxNodes;
  let limited = false;
  const convert = (node: Parse5Node): HtmlNode => {
    budget--;
    const attrs: Record<string, string> = {};
    for (const a of node.attrs ?? []) attrs[a.name] = a.value;
    let text = '';
    const children: HtmlNode[] = [];
    const kids = node.content?.childNodes ?? node.childNodes ?? [];
    for (const child of kids) {
      if (child.nodeName === '#text') text += child.value ?? '';
      else if (child.tagName !== undefined) {
        if (budget <= 0) {
          limited = true;
          break;
        }
        children.push(convert(child));
      }
    }
    return { name: node.tagName ?? node.nodeName, attrs, text: text.replace(/\s+/g, ' ').trim(), children };
  };
  const html = (document.childNodes ?? []).find((n) => n.tagName === 'html');
  const root = html ? convert(html) : { name: 'html', attrs: {}, text: '', children: [] };
  return { root, limited };
}

/** `tag#id`, else `tag.firstClass`, else `tag`. */
function label(node: HtmlNode): string {
  const id = node.attrs['id'];
  if (id && /^[\w-]{1,64}$/.test(id)) return `${node.name}#${id}`;
  const cls = node.attrs['class']?.trim().split(/\s+/)[0];
  return cls && /^[\w-]{1,64}$/.test(cls) ? `${node.name}.${cls}` : node.name;
}

function preview(node: HtmlNode): string {
  const text = node.text || node.children.map((c) => c.text).join(' ');
  return `<${label(node)}>${text.length > 80 ? text.slice(0, 80) + '…' : text}`;
}

/** Compiled node-path entries of diff.ignorePaths (those not starting with "/"). */
export class NodeRules {
  private readonly rules: { readonly steps: readonly string[]; readonly attr: string | undefined }[] = [];

  constructor(patterns: readonly string[]) {
    for (const p of patterns) {
      if (p === '' || p.startsWith('/')) continue;
      const at = p.indexOf('@');
      const steps = (at < 0 ? p : p.slice(0, at)).split('>').map((s) => s.trim());
      if (steps.some((s) => s === '')) continue;
      this.rules.push({ steps, attr: at < 0 ? undefined : p.slice(at + 1).trim() });
    }
  }

  get size(): number {
    return this.rules.length;
  }

  private prefix(steps: readonly string[], path: readonly string[]): boolean {
    if (steps.length > path.length) return false;
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i]!;
      const p = path[i]!;
      if (s !== '*' && s !== p && s !== p.replace(/:nth-of-type\(\d+\)$/, '')) return false;
    }
    return true;
  }

  /** The node (and so its subtree) is ignored. */
  node(path: readonly string[]): boolean {
    for (const r of this.rules) if (r.attr === undefined && this.prefix(r.steps, path)) return true;
    return false;
  }

  attribute(path: readonly string[], name: string): boolean {
    for (const r of this.rules) if (r.attr === name && r.steps.length === path.length && this.prefix(r.steps, path)) return true;
    return false;
  }
}

const NO_RULES = new NodeRules([]);

/** Pointers name nodes with :nth-of-type(n) where siblings share a label; templates never do. */
export function compareHtml(
  a: HtmlNode,
  b: HtmlNode,
  rules: NodeRules = NO_RULES,
  limits: WalkLimits,
): { differences: RawDifference[]; nodes: number; limited?: 'nodes' | 'depth' } {
  const differences: RawDifference[] = [];
  const pointer: string[] = [];
  const template: string[] = [];
  let nodes = 0;
  let limited: 'nodes' | 'depth' | undefined;
  const record = (change: RawDifference['change'], primary: unknown, shadow: unknown, attr?: string, note?: string) => {
    const suffix = attr === undefined ? '' : `@${attr}`;
    const d: RawDifference = { pointer: pointer.join(' > ') + suffix, template: template.join(' > ') + suffix, change, primary, shadow };
    differences.push(note ? { ...d, note } : d);
  };

  const walk = (x: HtmlNode, y: HtmlNode, depth: number): void => {
    if (limited) return;
    if (++nodes > limits.maxNodes) {
      limited = 'nodes';
      return;
    }
    if (depth > limits.maxDepth) {
      limited = 'depth';
      return;
    }
    if (x.name !== y.name) return record('type', preview(x), preview(y));
    const ignoring = rules.size > 0;
    for (const name in x.attrs) {
      if (ignoring && rules.attribute(pointer, name)) continue;
      if (!Object.hasOwn(y.attrs, name)) record('missing', x.attrs[name], undefined, name);
      else if (x.attrs[name] !== y.attrs[name]) record('value', x.attrs[name], y.attrs[name], name);
    }
    for (const name in y.attrs) {
      if (Object.hasOwn(x.attrs, name) || (ignoring && rules.attribute(pointer, name))) continue;
      record('extra', undefined, y.attrs[name], name);
    }
    if (x.text !== y.text) record('value', x.text, y.text, undefined, 'text');
    const labelsX = x.children.map(label);
    const labelsY = y.children.map(label);
    const counts = new Map<string, number>();
    for (const l of labelsX.length >= labelsY.length ? labelsX : labelsY) counts.set(l, (counts.get(l) ?? 0) + 1);
    const seen = new Map<string, number>();
    const n = Math.max(x.children.length, y.children.length);
    for (let i = 0; i < n && !limited; i++) {
      const cx = x.children[i];
      const cy = y.children[i];
      const l = (cx ? labelsX[i] : labelsY[i])!;
      const k = (seen.get(l) ?? 0) + 1;
      seen.set(l, k);
      pointer.push((counts.get(l) ?? 0) > 1 ? `${l}:nth-of-type(${k})` : l);
      template.push(l);
      if (!(ignoring && rules.node(pointer))) {
        if (cx && cy) walk(cx, cy, depth + 1);
        else if (cx) record('missing', preview(cx), undefined);
        else if (cy) record('extra', undefined, preview(cy));
      }
      pointer.pop();
      template.pop();
    }
  };
  pointer.push(a.name);
  template.push(a.name);
  if (!rules.node(pointer)) walk(a, b, 0);
  return limited ? { differences, nodes, limited } : { differences, nodes };
}
