/**
 * The release controller outside the gateways (`gatewayctl release run`),
 * for routes with `controller: external` served by several replicas.
 *
 * Every check it finds the replicas (the --admin URLs, and every address
 * --admin-dns resolves to), reads each running step's evidence for the
 * window it has itself watched (from Prometheus, scoped and windowed, or
 * from the replicas' /metrics), judges the step with the same code a
 * gateway uses, and writes the decision, with the judgement, to every
 * replica, so all are on the same step. The first replica is the leader:
 * its state is the one carried forward, and a replica that disagrees (a
 * restart, a missed write) is set to it.
 */
import { promises as dns } from 'node:dns';
import { adminJson, type AdminAccess } from '../admin/http-client.js';
import type { GatewayConfig, ReleaseConfig } from '../config/types.js';
import { AdminRequestError, UsageError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { ReleaseView } from './controller.js';
import { judgeStep, unjudgeable, type GateName, type Judgement } from './judge.js';
import { decide, describePosition, type ReleaseState, type ReleaseStatus } from './machine.js';
import { ReplicaMetricsEvidence, type EvidenceSource } from './sources.js';

export interface ExternalRunnerOptions {
  readonly admins: readonly string[];
  /** NAME:PORT, resolved to every address on each check (a headless Service). */
  readonly adminDns?: readonly string[];
  readonly evidence?: EvidenceSource;
  /** Token and CA for the replicas' admin APIs. */
  readonly access?: AdminAccess;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly resolve?: (name: string) => Promise<string[]>;
}

interface Replica {
  readonly admin: string;
  readonly releases: ReleaseView[];
}

/** The window a step is judged on, as this runner has watched it. */
interface StepWindow {
  /** The step, as the gateways date it. */
  readonly since: number;
  /** When this runner first saw the step: the deadline counts from here. */
  readonly firstSeen: number;
  /** Where judging starts: first sight, or the first scrape after a gap. */
  start: number;
}

export interface CheckOutcome {
  /** Routes whose release moved in this check. */
  readonly moved: string[];
  /** Every external release's status after the check. */
  readonly statuses: ReadonlyMap<string, { status: ReleaseStatus; failed: boolean }>;
}

export class ExternalReleaseRunner {
  private readonly windows = new Map<string, StepWindow>();
  private readonly now: () => number;
  private readonly evidence: EvidenceSource;
  private readonly access: AdminAccess;

  constructor(private readonly options: ExternalRunnerOptions) {
    if (options.admins.length === 0 && !options.adminDns?.length) {
      throw new AdminRequestError('release run needs at least one --admin URL or --admin-dns NAME:PORT');
    }
    for (const entry of options.adminDns ?? []) splitNamePort(entry);
    this.now = options.now ?? Date.now;
    this.access = options.access ?? {};
    this.evidence = options.evidence ?? new ReplicaMetricsEvidence(this.access);
  }

  /** The replicas' admin URLs: the given ones, then every address of each DNS name. */
  async replicas(): Promise<string[]> {
    const resolve = this.options.resolve ?? resolveAll;
    const found = await Promise.all(
      (this.options.adminDns ?? []).map(async (entry) => {
        const { name, port } = splitNamePort(entry);
        let addresses: string[];
        try {
          addresses = await resolve(name);
        } catch (err) {
          throw new AdminRequestError(`DNS: cannot resolve --admin-dns ${name}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        return addresses.sort().map((a) => `http://${a.includes(':') ? `[${a}]` : a}:${port}`);
      }),
    );
    const all = [...new Set([...this.options.admins, ...found.flat()])];
    if (all.length === 0) throw new AdminRequestError(`DNS: --admin-dns ${this.options.adminDns?.join(', ')} resolved to no address`);
    return all;
  }

  /** One check of every external release. */
  async tick(): Promise<CheckOutcome> {
    const admins = await this.replicas();
    const leader = admins[0]!;
    const config = (await adminJson<{ config: GatewayConfig }>(leader, '/config', this.access)).config;
    const replicas: Replica[] = await Promise.all(
      admins.map(async (admin) => ({
        admin,
        releases: (await adminJson<{ releases: ReleaseView[] }>(admin, '/releases', this.access)).releases,
      })),
    );
    const external = config.routes.filter((r) => r.release?.controller === 'external');
    if (external.some((r) => replicas[0]!.releases.find((v) => v.route === r.name)?.state.status === 'running')) {
      await this.evidence.refresh(admins);
    }
    const moved: string[] = [];
    const statuses = new Map<string, { status: ReleaseStatus; failed: boolean }>();
    for (const route of external) {
      const release = route.release!;
      const leading = replicas[0]!.releases.find((r) => r.route === route.name)?.state;
      if (!leading) continue;
      let next = leading;
      let judgement: Judgement | undefined;
      if (leading.status === 'running') {
        judgement = await this.judge(route.name, release, route.backends.map((b) => b.upstream), leading);
        next = decide(leading, release, judgement, this.now());
        this.report(route.name, release, leading, next, judgement);
        if (next.history.length !== leading.history.length) moved.push(route.name);
      }
      statuses.set(route.name, { status: next.status, failed: next.failure !== undefined });
      await this.writeAll(route.name, release, next, judgement, replicas);
    }
    return { moved, statuses };
  }

  private async judge(route: string, release: ReleaseConfig, stable: string[], state: ReleaseState): Promise<Judgement> {
    const now = this.now();
    let window = this.windows.get(route);
    if (!window || window.since !== state.since) {
      // Count from this runner's own first sight of the step: evidence from
      // before it (or before a restart of the runner) is not this step's.
      window = { since: state.since, firstSeen: now, start: now };
      this.windows.set(route, window);
    }
    const { evidence, coverage } = await this.evidence.window(route, window.start, now);
    if (!coverage.ok) {
      if (coverage.resumeAt !== undefined && coverage.resumeAt > window.start) window.start = coverage.resumeAt;
      return unjudgeable(coverage.reason, now - window.start, now - window.firstSeen);
    }
    return judgeStep(release.steps[state.stepIndex]!, release, stable, evidence, route, now - window.start, now - window.firstSeen);
  }

  /** Every decision at info level, with its gate figures; transitions at warn when they fail. */
  private report(route: string, release: ReleaseConfig, before: ReleaseState, after: ReleaseState, judgement: Judgement): void {
    const from = describePosition(before, release);
    const moved = after.history.length !== before.history.length;
    const fields = {
      route,
      candidate: release.candidate,
      step: from,
      verdict: judgement.verdict,
      evidence: this.evidence.description,
      windowMs: judgement.elapsedMs,
      candidateRequests: judgement.candidateRequests,
      stableRequests: judgement.stableRequests,
      gates: judgement.gates.map((g) => ({ gate: g.gate, status: g.status, value: g.value, limit: g.limit, detail: g.detail })),
      ...(judgement.blocked ? { blocked: judgement.blocked } : {}),
    };
    if (moved) {
      const to = describePosition(after, release);
      const level = after.status === 'rolled-back' || after.failure ? 'warn' : 'info';
      this.options.logger.log(level, 'release.transition', `route ${route}: ${from} -> ${to}: ${after.reason}`, { ...fields, to });
    } else {
      const gates = judgement.gates.map((g) => `${g.gate} ${g.status} ${figure(g.value, g.gate)} (limit ${figure(g.limit, g.gate)})`).join(', ');
      this.options.logger.info('release.check', `route ${route} at ${from}: ${judgement.verdict}: ${judgement.reason}${gates ? ` [${gates}]` : ''}`, fields);
    }
  }

  /** Writes `next` and the judgement to every replica; the state only where it differs. */
  private async writeAll(route: string, release: ReleaseConfig, next: ReleaseState, judgement: Judgement | undefined, replicas: Replica[]): Promise<void> {
    await Promise.all(
      replicas.map(async ({ admin, releases }) => {
        const current = releases.find((r) => r.route === route)?.state;
        const same = current && current.stepIndex === next.stepIndex && current.status === next.status && current.since === next.since;
        if (same && !judgement) return;
        try {
          await adminJson(admin, `/releases/${encodeURIComponent(route)}/state`, {
            ...this.access,
            method: 'POST',
            body: { state: next, ...(judgement ? { judgement } : {}) },
          });
        } catch (err) {
          this.options.logger.error('release.apply', `admin API ${admin}: cannot set ${route} to ${describePosition(next, release)}: ${(err as Error).message}`, {
            route,
            component: 'admin',
          });
        }
      }),
    );
  }
}

/** A gate's value as people read it: ratios as 1.05x, rates as percentages. */
function figure(value: number | null, gate: GateName): string {
  if (value === null) return '-';
  return gate === 'latencyRatio' ? `${value.toFixed(2)}x` : `${(value * 100).toFixed(2)}%`;
}

function splitNamePort(entry: string): { name: string; port: number } {
  const colon = entry.lastIndexOf(':');
  const port = Number(entry.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`--admin-dns ${entry}: expected NAME:PORT, e.g. gatewayctl-admin.prod.svc:9901`);
  }
  return { name: entry.slice(0, colon), port };
}

async function resolveAll(name: string): Promise<string[]> {
  const found = await dns.lookup(name, { all: true, verbatim: true });
  return [...new Set(found.map((a) => a.address))];
}

/** `--until-done`: every external release is finished (or stopped by a failure). */
export function releasesDone(outcome: CheckOutcome): { done: boolean; ok: boolean } {
  const all = [...outcome.statuses.values()];
  const finished = (s: { status: ReleaseStatus; failed: boolean }) =>
    s.status === 'promoted' || s.status === 'completed' || s.status === 'rolled-back' || (s.status === 'paused' && s.failed);
  return {
    done: all.length > 0 && all.every(finished),
    ok: all.every((s) => s.status === 'promoted' || s.status === 'completed'),
  };
}
