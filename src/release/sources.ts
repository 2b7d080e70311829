/**
 * Where `gatewayctl release run` reads a step's evidence from: Prometheus
 * (windowed, scoped queries; see promql.ts), or the replicas' own /metrics
 * (readings at the window's start subtracted from the current ones).
 */
import { adminRequest, type AdminAccess } from '../admin/http-client.js';
import { AdminRequestError } from '../errors.js';
import { windowCoverage, type Coverage } from './coverage.js';
import { bucketsOf, METRIC } from '../metrics/names.js';
import { samplesFromText, type Sample } from '../metrics/read.js';
import { evidenceFrom, evidenceSince, type Evidence } from './evidence.js';
import type { PrometheusClient, VectorSample } from './prometheus.js';
import { stepQueries } from './promql.js';

export interface EvidenceWindow {
  readonly evidence: Evidence;
  /** Whether the window is whole enough to judge. */
  readonly coverage: Coverage;
}

export interface EvidenceSource {
  /** Called once per check, before any window is asked for. */
  refresh(admins: readonly string[]): Promise<void>;
  /** What route `route` gathered from `startMs` to `nowMs`. */
  window(route: string, startMs: number, nowMs: number): Promise<EvidenceWindow>;
  /** For logs and the status: where the evidence comes from. */
  readonly description: string;
}

export class PrometheusEvidence implements EvidenceSource {
  readonly description: string;

  constructor(
    private readonly client: PrometheusClient,
    private readonly selector: readonly string[],
    private readonly scrapeIntervalMs?: number,
  ) {
    this.description = `Prometheus ${client.url}${selector.length ? ` {${selector.join(',')}}` : ''}`;
  }

  async refresh(): Promise<void> {}

  async window(route: string, startMs: number, nowMs: number): Promise<EvidenceWindow> {
    const q = stepQueries(this.selector, route, nowMs - startMs);
    const [requests, latency, comparisons, gatewayErrors, scrapes] = await Promise.all([
      this.client.vector(q.requests, nowMs),
      this.client.vector(q.latency, nowMs),
      this.client.vector(q.comparisons, nowMs),
      this.client.vector(q.gatewayErrors, nowMs),
      this.client.matrix(q.scrapes, nowMs),
    ]);
    const coverage = windowCoverage(
      scrapes.map((s) => ({ times: s.values.map(([t]) => Math.round(t * 1000)) })),
      startMs,
      nowMs,
      this.scrapeIntervalMs,
    );
    const samples = [
      ...vectorSamples(METRIC.requests, requests),
      ...vectorSamples(bucketsOf(METRIC.requestDuration), latency),
      ...vectorSamples(METRIC.shadowComparisons, comparisons),
      ...vectorSamples(METRIC.upstreamErrors, gatewayErrors),
    ];
    return { evidence: evidenceFrom(samples), coverage };
  }
}

/**
 * increase() extrapolates to the window's edges, so counts come back as
 * fractions; the gates count requests, so they are rounded.
 */
export function vectorSamples(name: string, result: readonly VectorSample[]): Sample[] {
  return result.map(({ metric, value }) => {
    const { __name__: _ignored, ...labels } = metric;
    const n = Number(value[1]);
    return { name, labels, value: Number.isFinite(n) ? Math.max(0, Math.round(n)) : 0 };
  });
}

/** The replicas' own /metrics, read on every check and summed. */
export class ReplicaMetricsEvidence implements EvidenceSource {
  readonly description = "the replicas' /metrics";
  private current: Evidence = { bounds: [], routes: {} };
  private readonly bases = new Map<string, { startMs: number; evidence: Evidence }>();

  constructor(private readonly access: AdminAccess = {}) {}

  async refresh(admins: readonly string[]): Promise<void> {
    const texts = await Promise.all(
      admins.map(async (admin) => {
        const r = await adminRequest(admin, '/metrics', this.access);
        if (r.status !== 200) throw new AdminRequestError(`admin API ${admin}/metrics answered ${r.status}`, r.status);
        return r.text;
      }),
    );
    this.current = evidenceFrom(texts.flatMap(samplesFromText));
  }

  async window(route: string, startMs: number): Promise<EvidenceWindow> {
    let base = this.bases.get(route);
    if (!base || base.startMs !== startMs) this.bases.set(route, (base = { startMs, evidence: this.current }));
    // Each check is one complete reading of every replica: nothing to miss.
    return { evidence: evidenceSince(this.current, base.evidence), coverage: { ok: true, scrapes: 1, expected: 1, intervalMs: 0 } };
  }
}
