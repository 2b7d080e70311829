/**
 * Whether a value received from elsewhere (POST /releases/ROUTE/state, sent
 * by an external controller) is a release state or a judgement. A state is
 * kept, shown and written to stateDir as it came, so one of the wrong shape
 * would break every later view of the release, and a restart too.
 */
import type { Judgement } from './judge.js';
import type { ReleaseState, ReleaseStatus } from './machine.js';

type Check = (value: unknown) => boolean;

/** The largest time a Date holds (ECMA-262, 21.4.1.1): anything beyond cannot be shown. */
const MAX_TIME = 8.64e15;

const isString: Check = (value) => typeof value === 'string';
const isNumber: Check = (value) => typeof value === 'number';
const isTime: Check = (value) => typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= MAX_TIME;
const oneOf = (names: readonly string[]): Check => (value) => typeof value === 'string' && names.includes(value);
const listOf = (check: Check): Check => (value) => Array.isArray(value) && value.every(check);
const either = (...checks: Check[]): Check => (value) => checks.some((check) => check(value));
/** An object whose every named field passes its check; other fields are let through. */
const shaped = (fields: Record<string, Check>): Check => (value) =>
  typeof value === 'object' &&
  value !== null &&
  !Array.isArray(value) &&
  Object.entries(fields).every(([name, check]) => check((value as Record<string, unknown>)[name]));

const gateFigure = shaped({ gate: isString, value: either(isNumber, (v) => v === null), limit: isNumber, status: isString, detail: isString });
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
  failure: either((v) => v === undefined, judgement),
});

export const isJudgement = (value: unknown): value is Judgement => judgement(value);
export const isReleaseState = (value: unknown): value is ReleaseState => releaseState(value);
