/**
 * XML bodies as element trees, parsed with fast-xml-parser, into the same
 * shape as HTML (html.ts): elements, their attributes and their own text,
 * so differences get node paths such as `catalog > item:nth-of-type(2) > price`
 * and `ignorePaths` node paths apply. Processing instructions, comments and
 * DOCTYPEs are not compared.
 */
import type { XMLParser } from 'fast-xml-parser';
import { LazyModule } from '../lazy-module.js';
import type { HtmlNode } from './html.js';

/** Loaded by the first pair with an XML body (diff/parsers.ts). */
export const XML_PARSER = new LazyModule<XMLParser>('fast-xml-parser', async () => {
  const { XMLParser } = await import('fast-xml-parser');
  return new XMLParser({
    preserveOrder: true,
    ignoreAttributes: false,
    attributeNamePrefix: '',
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    processEntities: true,
  });
});

type Ordered = Record<string, unknown>[];

/** The document element as a tree of at most `maxNodes` elements; undefined when it does not parse. XML_PARSER must be loaded. */
export function parseXml(text: string, maxNodes: number): { root: HtmlNode; limited: boolean } | undefined {
  const parser = XML_PARSER.get();
  let doc: Ordered;
  try {
    doc = parser.parse(text) as Ordered;
  } catch {
    return undefined;
  }
  let budget = maxNodes;
  let limited = false;
  const convert = (name: string, children: Ordered, attrs: Record<string, unknown> | undefined): HtmlNode => {
    budget--;
    let own = '';
    const kids: HtmlNode[] = [];
    for (const child of children) {
      const key = Object.keys(child).find((k) => k !== ':@');
      if (key === undefined || key.startsWith('?') || key === '#comment') continue;
      if (key === '#text') own += (own ? ' ' : '') + String(child[key]);
      else if (budget <= 0) limited = true;
      else kids.push(convert(key, child[key] as Ordered, child[':@'] as Record<string, unknown> | undefined));
    }
    const attributes: Record<string, string> = {};
    for (const [k, v] of Object.entries(attrs ?? {})) attributes[k] = String(v);
    return { name, attrs: attributes, text: own.replace(/\s+/g, ' ').trim(), children: kids };
  };
  const top = doc.find((n) => Object.keys(n).some((k) => k !== ':@' && !k.startsWith('?') && k !== '#comment' && k !== '#text'));
  if (!top) return undefined;
  const name = Object.keys(top).find((k) => k !== ':@')!;
  return { root: convert(name, top[name] as Ordered, top[':@'] as Record<string, unknown> | undefined), limited };
}
