/**
 * Endpoint templates: every mirrored request is grouped under one, so noise,
 * verdicts and latency are judged per endpoint whatever the routes are.
 * The route's `diff.endpoints` templates come first ("{name}" matches any
 * one segment); other paths get an inferred template where segments that
 * look like ids (numbers, UUIDs, hex, long tokens) become "{id}".
 * Templates are short by construction; how many are kept is bounded by
 * EndpointBook.
 */

/** Kept segments of an inferred template; the rest become one "{…}". */
const MAX_SEGMENTS = 8;
const MAX_SEGMENT_CHARS = 48;
export const ID = '{id}';
/** Where requests go once a route has as many endpoints as allowed. */
export const OTHER_ENDPOINT = '(other)';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX = /^(?=[0-9a-f]*\d)[0-9a-f]{8,}$/i;
const TOKEN = /^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_=-]{16,}$/;

/** A path segment that names data rather than a resource kind. */
export function isIdSegment(segment: string): boolean {
  if (segment.length > MAX_SEGMENT_CHARS) return true;
  if (/^\d+$/.test(segment)) return true;
  if (UUID.test(segment) || HEX.test(segment) || TOKEN.test(segment)) return true;
  // sku-004211, order_12345: a short prefix on a long number.
  return /\d{4,}/.test(segment);
}

function pathOnly(target: string): string {
  const q = target.search(/[?#]/);
  return q < 0 ? target : target.slice(0, q);
}

/** Recent paths and their templates: most traffic repeats a few paths. */
const inferred = new Map<string, string>();
const INFERRED_CACHE = 1024;

export function inferEndpoint(target: string): string {
  const path = pathOnly(target);
  let template = inferred.get(path);
  if (template === undefined) {
    template = inferFrom(path);
    if (inferred.size >= INFERRED_CACHE) inferred.clear();
    if (path.length <= 256) inferred.set(path, template);
  }
  return template;
}

function inferFrom(path: string): string {
  const segments = path.split('/').slice(1);
  if (segments.length === 0) return '/';
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    if (i === MAX_SEGMENTS) {
      out.push('{…}');
      break;
    }
    const s = segments[i]!;
    out.push(isIdSegment(s) ? ID : s);
  }
  return '/' + out.join('/');
}

interface Template {
  readonly text: string;
  /** undefined: a "{name}" segment, any one value. */
  readonly segments: readonly (string | undefined)[];
}

/** A route's configured templates, compiled once per list. */
export class EndpointTemplates {
  private readonly templates: Template[];

  constructor(list: readonly string[]) {
    this.templates = list.map((text) => ({
      text,
      segments: text
        .split('/')
        .slice(1)
        .map((s) => (/^\{[^{}]*\}$/.test(s) ? undefined : s)),
    }));
  }

  /** The configured template a request path falls under, else the inferred one. */
  endpointOf(target: string): string {
    if (this.templates.length > 0) {
      const segments = pathOnly(target).split('/').slice(1);
      for (const t of this.templates) {
        if (t.segments.length !== segments.length) continue;
        let ok = true;
        for (let i = 0; i < segments.length && ok; i++) ok = t.segments[i] === undefined || t.segments[i] === segments[i];
        if (ok) return t.text;
      }
    }
    return inferEndpoint(target);
  }
}

const compiled = new WeakMap<readonly string[], EndpointTemplates>();

export function endpointTemplatesFor(list: readonly string[]): EndpointTemplates {
  let t = compiled.get(list);
  if (!t) compiled.set(list, (t = new EndpointTemplates(list)));
  return t;
}

/**
 * The endpoints seen per route, bounded: once a route has `maxPerRoute`,
 * further templates are counted under OTHER_ENDPOINT, so a flood of odd
 * paths cannot grow memory, the summary or anything keyed by endpoint.
 */
export class EndpointBook {
  private readonly seen = new Map<string, Set<string>>();

  constructor(private readonly maxPerRoute = 200) {}

  admit(route: string, endpoint: string): string {
    let set = this.seen.get(route);
    if (!set) this.seen.set(route, (set = new Set()));
    if (set.has(endpoint)) return endpoint;
    if (set.size >= this.maxPerRoute) return OTHER_ENDPOINT;
    set.add(endpoint);
    return endpoint;
  }
}
