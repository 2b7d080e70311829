/**
 * Drives the releases of one gateway: every check, it reads the evidence
 * gathered since the current step began, judges the step, moves the state
 * machine, persists the state, and asks the gateway to apply the traffic
 * the new state implies. Releases with `controller: external` are moved
 * only by `gatewayctl release run` (through `set`), never by this timer.
 */
import type { GatewayConfig, ReleaseConfig, RouteConfig } from '../config/types.js';
import { ErrorCodes, GatewayError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import { evidenceSince, type Evidence } from './evidence.js';
import { judgeStep, type Judgement } from './judge.js';
import {
  act,
  decide,
  describePosition,
  initialState,
  stepLabel,
  trafficFor,
  type ReleaseAction,
  type ReleaseState,
} from './machine.js';
import { ReleaseStore } from './store.js';

export interface ReleaseControllerOptions {
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  /** Cumulative evidence now (all workers of this gateway). */
  readonly evidence: () => Promise<Evidence>;
  /** Called after a state change that changes traffic. */
  readonly onTrafficChange: () => Promise<void> | void;
  readonly now?: () => number;
}

/** What GET /releases shows for one route. */
export interface ReleaseView {
  readonly route: string;
  readonly candidate: string;
  readonly controller: 'gateway' | 'external';
  readonly status: string;
  readonly step: string;
  readonly stepIndex: number;
  readonly steps: readonly string[];
  readonly weight: number;
  readonly shadow: boolean;
  readonly since: string;
  readonly timeInStepMs: number;
  readonly verdict: string;
  readonly reason: string;
  readonly gates: Judgement['gates'];
  readonly candidateRequests: number;
  readonly minRequests: number;
  readonly intervalMs: number;
  readonly history: ReleaseState['history'];
  readonly failure: Judgement | undefined;
  /** The state itself, for external controllers to compare and copy. */
  readonly state: ReleaseState;
}

/** An external controller's judgement is shown while it keeps checking. */
const REMOTE_JUDGEMENT_TTL_MS = 30_000;

export class ReleaseController {
  private states = new Map<string, ReleaseState>();
  private readonly bases = new Map<string, Evidence>();
  /** When each base was read: after a restart, later than the step's start. */
  private readonly baseTimes = new Map<string, number>();
  private readonly judgements = new Map<string, Judgement>();
  /** When an external controller last sent its judgement, per route. */
  private readonly remoteJudgements = new Map<string, number>();
  private config: GatewayConfig | undefined;
  private store: ReleaseStore | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private readonly now: () => number;

  constructor(private readonly options: ReleaseControllerOptions) {
    this.now = options.now ?? Date.now;
  }

  get current(): ReadonlyMap<string, ReleaseState> {
    return this.states;
  }

  /**
   * Lines the states up with a (new) config: a route with a new candidate
   * starts a new release; a route whose release block is gone forgets it.
   * Returns true when traffic changes.
   */
  sync(config: GatewayConfig): boolean {
    if (!this.store || this.store.file !== new ReleaseStore(config.stateDir).file) {
      this.store = new ReleaseStore(config.stateDir);
      try {
        const { states, refused } = this.store.load();
        this.states = states;
        for (const route of refused) {
          this.options.logger.error('release.state', `${this.store.file}: the release of route "${route}" is not a release state; it starts afresh`);
        }
      } catch (err) {
        this.options.logger.error('release.state', `cannot read ${this.store.file}: ${(err as Error).message}; starting releases afresh`);
        this.states = new Map();
      }
    }
    this.config = config;
    let changed = false;
    const now = this.now();
    const withRelease = new Map(config.routes.filter((r) => r.release).map((r) => [r.name, r]));
    for (const name of [...this.states.keys()]) {
      if (!withRelease.has(name)) {
        this.states.delete(name);
        this.bases.delete(name);
        changed = true;
      }
    }
    for (const [name, route] of withRelease) {
      const release = route.release!;
      const existing = this.states.get(name);
      if (existing && existing.candidate === release.candidate) {
        if (existing.stepIndex >= release.steps.length) {
          this.states.set(name, { ...existing, stepIndex: release.steps.length - 1 });
          changed = true;
        }
        continue;
      }
      const state = initialState(name, release, now);
      this.states.set(name, state);
      this.bases.delete(name);
      changed = true;
      this.options.logger.info('release.started', `route ${name}: ${state.reason}`, { route: name, candidate: release.candidate });
      this.options.metrics.releaseTransitions.inc({ route: name, to: stepLabel(release.steps[0]) });
    }
    if (changed) this.persist();
    this.updateMetrics();
    return changed;
  }

  start(): void {
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    this.stop();
    const intervals = (this.config?.routes ?? []).flatMap((r) => (r.release ? [r.release.intervalMs] : []));
    const every = intervals.length ? Math.min(5000, Math.max(100, Math.min(...intervals) / 4)) : 5000;
    this.timer = setTimeout(() => {
      void this.tick().finally(() => this.schedule());
    }, every);
    this.timer.unref();
  }

  /** One check of every running release this gateway drives. */
  async tick(): Promise<void> {
    if (this.ticking || !this.config) return;
    this.ticking = true;
    try {
      const evidence = await this.options.evidence();
      let trafficChanged = false;
      for (const route of this.config.routes) {
        const release = route.release;
        const state = this.states.get(route.name);
        if (!release || !state) continue;
        if (!this.bases.has(route.name)) this.setBase(route.name, evidence);
        if (state.status !== 'running') continue;
        // An external controller's own judgement (its evidence, its window) is what the status shows.
        if (release.controller === 'external' && this.remoteJudged(route.name)) continue;
        const judgement = this.judge(route, release, state, evidence);
        if (release.controller === 'external') continue;
        const next = decide(state, release, judgement, this.now());
        trafficChanged = this.commit(route.name, release, state, next, evidence) || trafficChanged;
      }
      this.updateMetrics();
      if (trafficChanged) await this.options.onTrafficChange();
    } catch (err) {
      this.options.logger.error('release.check', `release check failed: ${(err as Error).message}`);
    } finally {
      this.ticking = false;
    }
  }

  private setBase(route: string, evidence: Evidence): void {
    this.bases.set(route, evidence);
    this.baseTimes.set(route, this.now());
  }

  private judge(route: RouteConfig, release: ReleaseConfig, state: ReleaseState, evidence: Evidence): Judgement {
    const window = evidenceSince(evidence, this.bases.get(route.name));
    const step = release.steps[state.stepIndex]!;
    const now = this.now();
    // The interval counts the evidence actually gathered: after a restart
    // mid-step, from the first reading, not from the step's start.
    const windowStart = Math.max(state.since, this.baseTimes.get(route.name) ?? state.since);
    const judgement = judgeStep(step, release, route.backends.map((b) => b.upstream), window, route.name, now - windowStart, now - state.since);
    this.judgements.set(route.name, judgement);
    return judgement;
  }

  /** Stores a new state; true when the candidate's traffic changed. */
  private commit(route: string, release: ReleaseConfig, before: ReleaseState, after: ReleaseState, evidence: Evidence): boolean {
    if (after === before) return false;
    this.states.set(route, after);
    const moved = after.history.length !== before.history.length;
    if (!moved) return false;
    this.setBase(route, evidence);
    const judged = after.failure ?? this.judgements.get(route);
    this.judgements.delete(route);
    this.persist();
    const to = describePosition(after, release);
    this.options.metrics.releaseTransitions.inc({ route, to });
    const level = after.status === 'rolled-back' || after.failure ? 'warn' : 'info';
    this.options.logger.log(level, 'release.transition', `route ${route}: ${describePosition(before, release)} -> ${to}: ${after.reason}`, {
      route,
      candidate: release.candidate,
      from: describePosition(before, release),
      to,
      // The figures the step was decided on, passed or failed.
      ...(judged && judged.gates.length ? { gates: judged.gates.map((g) => `${g.gate}=${g.status}: ${g.detail}`) } : {}),
    });
    const a = trafficFor(before, release);
    const b = trafficFor(after, release);
    return a.weight !== b.weight || a.shadow !== b.shadow;
  }

  private releaseOf(route: string): ReleaseConfig {
    const release = this.config?.routes.find((r) => r.name === route)?.release;
    if (!release || !this.states.has(route)) throw new ReleaseNotFoundError(route);
    return release;
  }

  /** An operator's pause, resume, promote or rollback. */
  async act(route: string, action: ReleaseAction, who = 'operator'): Promise<ReleaseView> {
    const release = this.releaseOf(route);
    const before = this.states.get(route)!;
    const after = act(before, release, action, this.now(), who);
    const evidence = await this.options.evidence().catch(() => this.bases.get(route));
    const changed = this.commit(route, release, before, after, evidence ?? { bounds: [], routes: {} });
    this.updateMetrics();
    if (changed) await this.options.onTrafficChange();
    return this.view(route)!;
  }

  private remoteJudged(route: string): boolean {
    const at = this.remoteJudgements.get(route);
    return at !== undefined && this.now() - at < REMOTE_JUDGEMENT_TTL_MS;
  }

  /**
   * Sets a state decided elsewhere (an external controller), with the
   * judgement it decided on, which the status then shows.
   */
  async set(route: string, state: ReleaseState, judgement?: Judgement): Promise<ReleaseView> {
    const release = this.releaseOf(route);
    const before = this.states.get(route)!;
    if (state.candidate !== release.candidate) throw new ReleaseConflictError(`route ${route} releases ${release.candidate}, not ${state.candidate}`);
    if (state.stepIndex < 0 || state.stepIndex >= release.steps.length) throw new ReleaseConflictError(`step ${state.stepIndex} does not exist`);
    let changed = false;
    if (before.stepIndex !== state.stepIndex || before.status !== state.status || before.since !== state.since) {
      const evidence = await this.options.evidence().catch(() => undefined);
      changed = this.commit(route, release, before, { ...state, route }, evidence ?? { bounds: [], routes: {} });
    }
    if (judgement && release.controller === 'external') {
      this.judgements.set(route, judgement);
      this.remoteJudgements.set(route, this.now());
    }
    this.updateMetrics();
    if (changed) await this.options.onTrafficChange();
    return this.view(route)!;
  }

  views(): ReleaseView[] {
    return [...this.states.keys()].flatMap((r) => this.view(r) ?? []);
  }

  view(route: string): ReleaseView | undefined {
    const state = this.states.get(route);
    const release = this.config?.routes.find((r) => r.name === route)?.release;
    if (!state || !release) return undefined;
    const judgement = this.judgements.get(route);
    const traffic = trafficFor(state, release);
    return {
      route,
      candidate: release.candidate,
      controller: release.controller,
      status: state.status,
      step: stepLabel(release.steps[state.stepIndex]),
      stepIndex: state.stepIndex,
      steps: release.steps.map(stepLabel),
      weight: traffic.weight,
      shadow: traffic.shadow,
      since: new Date(state.since).toISOString(),
      timeInStepMs: this.now() - state.since,
      verdict: state.status !== 'running' ? state.status : (judgement?.verdict ?? 'wait'),
      reason: state.status === 'running' && judgement ? judgement.reason : state.reason,
      gates: judgement?.gates ?? state.failure?.gates ?? [],
      candidateRequests: judgement?.candidateRequests ?? 0,
      minRequests: release.minRequests,
      intervalMs: release.intervalMs,
      history: state.history,
      failure: state.failure,
      state,
    };
  }

  private persist(): void {
    try {
      this.store?.save(this.states);
    } catch (err) {
      this.options.logger.error('release.state', `cannot save release state: ${(err as Error).message}`);
    }
  }

  private updateMetrics(): void {
    const m = this.options.metrics;
    m.releaseStep.reset();
    m.releaseWeight.reset();
    m.releaseGateValue.reset();
    m.releaseGateLimit.reset();
    for (const [route, state] of this.states) {
      const release = this.config?.routes.find((r) => r.name === route)?.release;
      if (!release) continue;
      const step = state.status === 'rolled-back' ? 0 : state.status === 'promoted' ? release.steps.length : state.stepIndex + 1;
      const candidate = state.candidate;
      m.releaseStep.set({ route, candidate }, step);
      m.releaseWeight.set({ route, candidate }, trafficFor(state, release).weight);
      for (const g of this.judgements.get(route)?.gates ?? []) {
        if (g.value !== null) m.releaseGateValue.set({ route, candidate, gate: g.gate }, g.value);
        m.releaseGateLimit.set({ route, candidate, gate: g.gate }, g.limit);
      }
    }
  }
}

export class ReleaseNotFoundError extends GatewayError {
  constructor(route: string) {
    super(ErrorCodes.NOT_FOUND, `route ${route} has no release`);
  }
}

export class ReleaseConflictError extends GatewayError {
  constructor(message: string) {
    super(ErrorCodes.RELEASE_CONFLICT, message);
  }
}
