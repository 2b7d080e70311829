/**
 * The one reader of metric samples: Prometheus text (replicas' /metrics,
 * tests), prom-client's JSON (this process, or every worker aggregated),
 * both into plain samples, and sums of samples by label values. Release
 * evidence and GET /status read through it, so they read alike.
 */
import { METRIC_PREFIX } from './names.js';

export interface Sample {
  /** The series name: a histogram's `_bucket`, `_sum` and `_count` are their own. */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** prom-client's JSON of one metric (see metrics/registry.ts MetricJson), as far as it is read here. */
interface MetricJson {
  name: string;
  values: readonly { labels: Partial<Record<string, string | number>>; value: number; metricName?: string }[];
}

/**
 * The gateway's own samples (gatewayctl_*) of prom-client's JSON, label
 * values as strings; only those of the metrics named in `only`, when given
 * (a periodic reader need not copy every histogram).
 */
export function samplesFromJson(metrics: readonly MetricJson[], only?: ReadonlySet<string>): Sample[] {
  const out: Sample[] = [];
  for (const metric of metrics) {
    if (!metric.name.startsWith(METRIC_PREFIX) || (only && !only.has(metric.name))) continue;
    for (const v of metric.values) {
      const labels: Record<string, string> = {};
      for (const [k, value] of Object.entries(v.labels)) if (value !== undefined) labels[k] = String(value);
      out.push({ name: v.metricName ?? metric.name, labels, value: v.value });
    }
  }
  return out;
}

const LABEL = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * The samples of the Prometheus text exposition format as the gateway
 * writes it: `name{labels} value` lines, the value last (no timestamps);
 * comments, blank lines and values that are not finite numbers are skipped.
 */
export function samplesFromText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.lastIndexOf(' ');
    if (space < 0) continue;
    const name = brace >= 0 && brace < space ? line.slice(0, brace) : line.slice(0, space);
    const labels: Record<string, string> = {};
    if (brace >= 0 && brace < space) {
      const body = line.slice(brace + 1, line.lastIndexOf('}'));
      for (const m of body.matchAll(LABEL)) labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const value = Number(line.slice(space + 1));
    if (Number.isFinite(value)) out.push({ name, labels, value });
  }
  return out;
}

/** The key of a combination of label values (what sumBy's map is keyed by). */
export const labelKey = (...values: string[]): string => values.join('\u0000');

/** The values of one series summed by the given labels (a missing label reads as ''). */
export function sumBy(samples: readonly Sample[], series: string, labels: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== series) continue;
    const k = labelKey(...labels.map((l) => s.labels[l] ?? ''));
    out.set(k, (out.get(k) ?? 0) + s.value);
  }
  return out;
}
