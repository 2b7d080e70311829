/**
 * The release controller outside the gateways (`gatewayctl release run`),
 * for routes with `controller: external` served by several replicas.
 *
 * Every check it sums the evidence of all replicas (their /metrics, or a
 * Prometheus server's), judges the step with the same code a gateway uses,
 * and writes the decision to every replica, so all are on the same step.
 * The first admin URL is the leader: its state is the one carried forward,
 * and a replica that disagrees (a restart, a missed write) is set to it.
 */
import { adminJson, adminRequest } from '../admin/http-client.js';
import type { GatewayConfig, ReleaseConfig } from '../config/types.js';
import { AdminRequestError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { ReleaseView } from './controller.js';
import { evidenceFrom, evidenceSince, samplesFromText, type Evidence, type Sample } from './evidence.js';
import { judgeStep } from './judge.js';
import { decide, describePosition, type ReleaseState } from './machine.js';

export interface ExternalRunnerOptions {
  readonly admins: readonly string[];
  readonly prometheus?: string;
  readonly token?: string;
  readonly logger: Logger;
  readonly now?: () => number;
}

interface Replica {
  readonly admin: string;
  readonly releases: ReleaseView[];
}

export class ExternalReleaseRunner {
  private readonly bases = new Map<string, { since: number; evidence: Evidence }>();
  private readonly now: () => number;

  constructor(private readonly options: ExternalRunnerOptions) {
    if (options.admins.length === 0) throw new AdminRequestError('release run needs at least one --admin URL');
    this.now = options.now ?? Date.now;
  }

  /** One check of every external release. Returns the routes it moved. */
  async tick(): Promise<string[]> {
    const [leader, ...others] = this.options.admins as [string, ...string[]];
    const config = (await adminJson<{ config: GatewayConfig }>(leader, '/config')).config;
    const replicas: Replica[] = await Promise.all(
      this.options.admins.map(async (admin) => ({
        admin,
        releases: (await adminJson<{ releases: ReleaseView[] }>(admin, '/releases')).releases,
      })),
    );
    const evidence = evidenceFrom(await this.samples());
    const moved: string[] = [];
    for (const route of config.routes) {
      const release = route.release;
      if (!release || release.controller !== 'external') continue;
      const leading = replicas[0]!.releases.find((r) => r.route === route.name)?.state;
      if (!leading) continue;
      let next = leading;
      if (leading.status === 'running') {
        const base = this.baseFor(route.name, leading, evidence);
        const judgement = judgeStep(
          release.steps[leading.stepIndex]!,
          release,
          route.backends.map((b) => b.upstream),
          evidenceSince(evidence, base),
          route.name,
          this.now() - leading.since,
        );
        next = decide(leading, release, judgement, this.now());
        if (next.history.length !== leading.history.length) {
          moved.push(route.name);
          this.bases.set(route.name, { since: next.since, evidence });
          this.options.logger.info(
            'release.transition',
            `route ${route.name}: ${describePosition(leading, release)} -> ${describePosition(next, release)}: ${next.reason}`,
            { route: route.name },
          );
        } else if (judgement.reason !== leading.reason) {
          this.options.logger.debug('release.check', `route ${route.name}: ${judgement.reason}`, { route: route.name });
        }
      }
      await this.writeAll(route.name, release, next, replicas, [leader, ...others]);
    }
    return moved;
  }

  private baseFor(route: string, state: ReleaseState, evidence: Evidence): Evidence {
    const known = this.bases.get(route);
    if (known && known.since === state.since) return known.evidence;
    // A step this runner did not see begin: count from now.
    this.bases.set(route, { since: state.since, evidence });
    return evidence;
  }

  /** Writes `next` wherever a replica's state differs from it. */
  private async writeAll(
    route: string,
    release: ReleaseConfig,
    next: ReleaseState,
    replicas: Replica[],
    admins: string[],
  ): Promise<void> {
    await Promise.all(
      admins.map(async (admin, i) => {
        const current = replicas[i]!.releases.find((r) => r.route === route)?.state;
        if (current && current.stepIndex === next.stepIndex && current.status === next.status && current.since === next.since) return;
        try {
          await adminJson(admin, `/releases/${encodeURIComponent(route)}/state`, {
            method: 'POST',
            body: { state: next },
            ...(this.options.token ? { token: this.options.token } : {}),
          });
        } catch (err) {
          this.options.logger.error('release.apply', `${admin}: cannot set ${route} to ${describePosition(next, release)}: ${(err as Error).message}`);
        }
      }),
    );
  }

  private async samples(): Promise<Sample[]> {
    if (this.options.prometheus) return prometheusSamples(this.options.prometheus);
    const texts = await Promise.all(
      this.options.admins.map(async (admin) => {
        const r = await adminRequest(admin, '/metrics');
        if (r.status !== 200) throw new AdminRequestError(`${admin}/metrics answered ${r.status}`, r.status);
        return r.text;
      }),
    );
    return texts.flatMap(samplesFromText);
  }
}

const PROMETHEUS_QUERIES = [
  'gatewayctl_requests_total',
  'gatewayctl_request_duration_seconds_bucket',
  'gatewayctl_shadow_comparisons_total',
  'gatewayctl_upstream_errors_total{reason="pool_exhausted"}',
];

/** Instant queries against Prometheus' HTTP API; series of all replicas. */
export async function prometheusSamples(base: string): Promise<Sample[]> {
  const out: Sample[] = [];
  for (const query of PROMETHEUS_QUERIES) {
    const body = await adminJson<{
      status: string;
      data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
    }>(base, `/api/v1/query?query=${encodeURIComponent(query)}`);
    if (body.status !== 'success' || !body.data) throw new AdminRequestError(`${base}: query ${query} failed`);
    out.push(...prometheusResultSamples(body.data.result));
  }
  return out;
}

export function prometheusResultSamples(result: { metric: Record<string, string>; value: [number, string] }[]): Sample[] {
  return result.map(({ metric, value }) => {
    const { __name__: name = '', ...labels } = metric;
    return { name, labels, value: Number(value[1]) };
  });
}
