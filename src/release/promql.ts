/**
 * The PromQL a release step is judged with, scoped by the operator's
 * selector and windowed to the step: Prometheus computes each counter's
 * increase() over exactly the window, per series (so a restarted pod, a
 * changed `instance` label or a scrape from before the step never counts),
 * and sums the series. docs/releases.md shows the same queries for Grafana.
 */
import { UsageError } from '../errors.js';
import { bucketsOf, METRIC } from '../metrics/names.js';

const MATCHER = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*/y;

/**
 * Parses `{job="gatewayctl",namespace="prod"}` (braces optional) into its
 * matchers, normalised. Throws a UsageError naming the flag otherwise.
 */
export function parseSelector(text: string | undefined): string[] {
  if (text === undefined) return [];
  let body = text.trim();
  if (body.startsWith('{')) {
    if (!body.endsWith('}')) throw new UsageError(`--selector ${text}: missing the closing "}"`);
    body = body.slice(1, -1);
  }
  const out: string[] = [];
  let at = 0;
  while (at < body.length) {
    MATCHER.lastIndex = at;
    const m = MATCHER.exec(body);
    if (!m) throw new UsageError(`--selector ${text}: expected label matchers such as {job="gatewayctl",namespace="prod"}`);
    if (m[1] === '__name__') throw new UsageError(`--selector ${text}: the metric name is chosen by each query`);
    out.push(`${m[1]}${m[2]}"${m[3]}"`);
    at = MATCHER.lastIndex;
    if (at < body.length) {
      if (body[at] !== ',') throw new UsageError(`--selector ${text}: matchers are separated by commas`);
      at++;
    }
  }
  return out;
}

const quote = (value: string) => JSON.stringify(value);

/** A metric selector with the scope and the route merged in. */
export function scoped(metric: string, selector: readonly string[], route: string): string {
  return `${metric}{${[...selector, `route=${quote(route)}`].join(',')}}`;
}

/** A PromQL range, in milliseconds so short test windows stay exact. */
export function promRange(windowMs: number): string {
  return `${Math.max(1, Math.round(windowMs))}ms`;
}

export interface StepQueries {
  /** Requests by upstream and status code over the window. */
  readonly requests: string;
  /** Latency histogram buckets by upstream over the window. */
  readonly latency: string;
  /** Shadow comparisons by target and result over the window. */
  readonly comparisons: string;
  /** The gateway's own 503s (pool_exhausted), not held against the upstream. */
  readonly gatewayErrors: string;
  /** Raw scrape timestamps of every gateway in scope, to find gaps. */
  readonly scrapes: string;
}

export function stepQueries(selector: readonly string[], route: string, windowMs: number): StepQueries {
  const range = promRange(windowMs);
  const all = `{${selector.join(',')}}`;
  return {
    requests: `sum by (route, upstream, code) (increase(${scoped(METRIC.requests, selector, route)}[${range}]))`,
    latency: `sum by (route, upstream, le) (increase(${scoped(bucketsOf(METRIC.requestDuration), selector, route)}[${range}]))`,
    comparisons: `sum by (route, upstream, result) (increase(${scoped(METRIC.shadowComparisons, selector, route)}[${range}]))`,
    gatewayErrors: `sum by (route, upstream, reason) (increase(${scoped(METRIC.upstreamErrors, [...selector, 'reason="pool_exhausted"'], route)}[${range}]))`,
    // Every gateway exports its config generation on every successful scrape.
    scrapes: `${METRIC.configGeneration}${selector.length ? all : ''}[${range}]`,
  };
}
