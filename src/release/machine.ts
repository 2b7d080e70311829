/**
 * The release state machine: pure functions from a state, the release's
 * config, a judgement or an operator's action, and the time, to the next
 * state. No clocks, files or sockets here, so every transition is tested
 * with a fake clock.
 */
import type { ReleaseConfig, ReleaseStep } from '../config/types.js';
import { ErrorCodes, GatewayError } from '../errors.js';
import type { Judgement } from './judge.js';

export type ReleaseStatus = 'running' | 'paused' | 'promoted' | 'completed' | 'rolled-back';
export type ReleaseAction = 'pause' | 'resume' | 'promote' | 'rollback';

export interface Transition {
  readonly at: number;
  readonly from: string;
  readonly to: string;
  readonly reason: string;
}

export interface ReleaseState {
  readonly route: string;
  /** A release is identified by its candidate: a new candidate is a new release. */
  readonly candidate: string;
  readonly stepIndex: number;
  readonly status: ReleaseStatus;
  /** When the current step (or status) began, ms since the epoch. */
  readonly since: number;
  readonly startedAt: number;
  readonly reason: string;
  readonly history: readonly Transition[];
  /** The judgement that failed the release, kept as evidence. */
  readonly failure?: Judgement | undefined;
}

const HISTORY = 50;

export function stepLabel(step: ReleaseStep | undefined): string {
  return step === 'shadow' ? 'shadow' : step === undefined ? 'none' : `${step}%`;
}

export function describePosition(state: ReleaseState, release: ReleaseConfig): string {
  if (state.status === 'promoted') return 'promoted';
  if (state.status === 'rolled-back') return 'rolled-back';
  const step = stepLabel(release.steps[state.stepIndex]);
  return state.status === 'running' ? step : `${step} (${state.status})`;
}

/** The candidate's share of user traffic, percent, and whether it is mirrored. */
export function trafficFor(state: ReleaseState, release: ReleaseConfig): { weight: number; shadow: boolean } {
  switch (state.status) {
    case 'promoted':
      return { weight: 100, shadow: false };
    case 'rolled-back':
      return { weight: 0, shadow: false };
    default: {
      const step = release.steps[Math.min(state.stepIndex, release.steps.length - 1)];
      return step === 'shadow' ? { weight: 0, shadow: true } : { weight: step ?? 0, shadow: false };
    }
  }
}

export function initialState(route: string, release: ReleaseConfig, now: number): ReleaseState {
  return {
    route,
    candidate: release.candidate,
    stepIndex: 0,
    status: 'running',
    since: now,
    startedAt: now,
    reason: `release of ${release.candidate} started at ${stepLabel(release.steps[0])}`,
    history: [{ at: now, from: 'none', to: stepLabel(release.steps[0]), reason: 'release started' }],
  };
}

function move(state: ReleaseState, release: ReleaseConfig, change: Partial<ReleaseState>, reason: string, now: number): ReleaseState {
  const from = describePosition(state, release);
  const next: ReleaseState = { ...state, ...change, since: now, reason };
  const to = describePosition(next, release);
  return { ...next, history: [...state.history, { at: now, from, to, reason }].slice(-HISTORY) };
}

/** Applies a judgement of the current step. Only running releases move. */
export function decide(state: ReleaseState, release: ReleaseConfig, judgement: Judgement, now: number): ReleaseState {
  if (state.status !== 'running') return state;
  if (judgement.verdict === 'fail') {
    const reason = `${stepLabel(release.steps[state.stepIndex])} failed: ${judgement.reason}`;
    return release.onFailure === 'pause'
      ? move(state, release, { status: 'paused', failure: judgement }, reason, now)
      : move(state, release, { status: 'rolled-back', failure: judgement }, reason, now);
  }
  const label = stepLabel(release.steps[state.stepIndex]);
  if (judgement.verdict === 'wait') {
    const deadline = release.maxStepDurationMs;
    if (deadline === undefined || (judgement.stepMs ?? judgement.elapsedMs) < deadline) {
      return state.reason === judgement.reason ? state : { ...state, reason: judgement.reason };
    }
    const after = `${label} reached its deadline (maxStepDuration ${Math.round(deadline / 1000)}s)`;
    if (release.onTimeout === 'pass' && !judgement.blocked && judgement.candidateRequests >= release.minRequests) {
      return advance(state, release, `${after} with no gate failing on ${judgement.candidateRequests} requests; passed (${judgement.reason})`, now);
    }
    const why = judgement.blocked
      ? `the evidence is incomplete (${judgement.blocked})`
      : judgement.candidateRequests < release.minRequests
        ? `only ${judgement.candidateRequests} of ${release.minRequests} requests`
        : judgement.reason;
    return move(state, release, { status: 'paused', failure: judgement }, `${after}: paused for a person: ${why}`, now);
  }
  return advance(state, release, `${label} passed after ${Math.round(judgement.elapsedMs / 1000)}s and ${judgement.candidateRequests} requests`, now);
}

function advance(state: ReleaseState, release: ReleaseConfig, reason: string, now: number): ReleaseState {
  if (state.stepIndex < release.steps.length - 1) return move(state, release, { stepIndex: state.stepIndex + 1 }, reason, now);
  const finalStep = release.steps[state.stepIndex];
  return move(state, release, { status: finalStep === 100 ? 'promoted' : 'completed' }, reason, now);
}

export class ReleaseActionError extends GatewayError {
  constructor(message: string) {
    super(ErrorCodes.RELEASE_CONFLICT, message);
  }
}

/** An operator's action: pause, resume, promote or rollback. */
export function act(state: ReleaseState, release: ReleaseConfig, action: ReleaseAction, now: number, who = 'operator'): ReleaseState {
  switch (action) {
    case 'pause':
      if (state.status !== 'running') throw new ReleaseActionError(`cannot pause: the release is ${state.status}`);
      return move(state, release, { status: 'paused' }, `paused by ${who}`, now);
    case 'resume':
      if (state.status === 'paused') return move(state, release, { status: 'running', failure: undefined }, `resumed by ${who}`, now);
      if (state.status === 'rolled-back') {
        return move(state, release, { status: 'running', stepIndex: 0, failure: undefined }, `restarted by ${who} after a rollback`, now);
      }
      throw new ReleaseActionError(`cannot resume: the release is ${state.status}`);
    case 'promote':
      if (state.status === 'promoted') throw new ReleaseActionError('the release is already promoted');
      return move(state, release, { status: 'promoted', stepIndex: release.steps.length - 1 }, `promoted by ${who}`, now);
    case 'rollback':
      if (state.status === 'rolled-back') throw new ReleaseActionError('the release is already rolled back');
      return move(state, release, { status: 'rolled-back' }, `rolled back by ${who}`, now);
  }
}
