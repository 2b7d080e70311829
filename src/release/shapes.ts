/**
 * Whether a value received from elsewhere (POST /releases/ROUTE/state, sent
 * by an external controller) is a release state or a judgement. A state is
 * kept, shown and written to stateDir as it came, so one of the wrong shape
 * would break every later view of the release, and a restart too.
 */
import { isNumber, isString, isTime, listOf, oneOf, optional, orNull, shaped } from '../json-shapes.js';
import type { Judgement } from './judge.js';
import type { ReleaseState, ReleaseStatus } from './machine.js';

export const gateFigure = shaped({ gate: isString, value: orNull(isNumber), limit: isNumber, status: isString, detail: isString });
const judgement = shaped({ verdict: oneOf(['pass', 'fail', 'wait'] satisfies Judgement['verdict'][]), reason: isString, gates: listOf(gateFigure) });
const transition = shaped({ at: isTime, from: isString, to: isString, reason: isString });
const releaseState = shaped({
  candidate: isString,
  stepIndex: Number.isSafeInteger,
  status: oneOf(['running', 'paused', 'promoted', 'completed', 'rolled-back'] satisfies ReleaseStatus[]),
  since: isTime,
  startedAt: isTime,
  reason: isString,
  history: listOf(transition),
  failure: optional(judgement),
});

export const isJudgement = (value: unknown): value is Judgement => judgement(value);
export const isReleaseState = (value: unknown): value is ReleaseState => releaseState(value);
