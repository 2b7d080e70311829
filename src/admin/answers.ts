/**
 * The shapes of the admin API's JSON answers, as far as the CLI reads them.
 * An --admin that names something else (the gateway's own listener, another
 * service) answers JSON too, and reading it as a gateway's would fail deep
 * in a renderer with a TypeError; checked here, it is a clear error instead.
 */
import { isNumber, isObject, isString, listOf, optional, orNull, shaped, type Check } from '../json-shapes.js';
import { gateFigure } from '../release/shapes.js';

export interface AnswerShape {
  /** What the answer should have been, for the error message. */
  readonly what: string;
  readonly check: Check;
}

const recordOf = (check: Check): Check => (value) => isObject(value) && Object.values(value as object).every(check);

export const isDiffEvent = shaped({
  time: isString,
  route: isString,
  method: isString,
  path: isString,
  primary: isObject,
  shadow: isObject,
  differences: listOf(isObject),
});

const backend = shaped({ upstream: isString, weight: isNumber, rps: isNumber });
const shadow = shaped({ upstream: isString, percent: isNumber, rps: isNumber, outcomes: recordOf(isNumber) });
export const STATUS: AnswerShape = {
  what: 'a gateway status (GET /status)',
  check: shaped({
    generation: isNumber,
    hash: isString,
    windowSeconds: isNumber,
    routes: listOf(shaped({ name: isString, match: isObject, backends: listOf(backend), shadows: listOf(shadow) })),
    upstreams: optional(listOf(shaped({ name: isString, endpoints: listOf(isObject) }))),
    dependencies: optional(recordOf(shaped({ live: isNumber, dark: recordOf(isNumber) }))),
  }),
};

const latency = shaped({ p50Ms: optional(orNull(isNumber)), p95Ms: optional(orNull(isNumber)) });
const shadowSummary = shaped({
  shadow: isString,
  compared: isNumber,
  differing: isNumber,
  diffRate: isNumber,
  diffRateCi: listOf(isNumber),
  findings: optional(listOf(isObject)),
  noise: optional(shaped({ top: listOf(isObject) })),
  latency: shaped({ primary: latency, shadow: latency }),
});
export const SUMMARY: AnswerShape = {
  what: 'a diff summary (GET /diffs/summary)',
  check: shaped({ routes: listOf(shaped({ route: isString, shadows: listOf(shadowSummary) })) }),
};

const side = shaped({ upstream: isString, headers: recordOf(isString) });
export const EXAMPLE: AnswerShape = {
  what: 'a diff example (GET /diffs/examples)',
  check: shaped({ event: isDiffEvent, example: shaped({ primary: side, shadow: side, differing: listOf(isObject), noise: listOf(isObject) }) }),
};

const releaseView = shaped({
  route: isString,
  candidate: isString,
  status: isString,
  step: isString,
  stepIndex: isNumber,
  steps: listOf(isString),
  weight: isNumber,
  gates: listOf(gateFigure),
});
export const RELEASE: AnswerShape = { what: 'a release (POST /releases/ROUTE/ACTION)', check: releaseView };
export const RELEASES: AnswerShape = { what: 'a list of releases (GET /releases)', check: shaped({ releases: listOf(releaseView) }) };

export const SIMULATION: AnswerShape = {
  what: 'a simulation (GET /egress/recordings)',
  check: shaped({ data: shaped({ pairs: listOf(isObject) }), meta: isObject }),
};

const diagnostic = shaped({ severity: isString, message: isString });
const diagnostics = optional(listOf(diagnostic));
export const RELOADED: AnswerShape = {
  what: 'a reload outcome (POST /reload)',
  check: shaped({ generation: isNumber, changed: optional(listOf(isString)), restartRequired: optional(listOf(isString)), warnings: diagnostics }),
};
export const REFUSED: AnswerShape = { what: 'a refused reload (POST /reload)', check: shaped({ error: optional(isString), errors: diagnostics }) };
