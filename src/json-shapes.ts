/**
 * Checks that parsed JSON from elsewhere has the shape the code reading it
 * relies on, built from small parts: `shaped({name: isString, items:
 * listOf(...)})`. Only named fields are checked; others are let through.
 */
export type Check = (value: unknown) => boolean;

/** The largest time a Date holds (ECMA-262, 21.4.1.1): anything beyond cannot be shown. */
const MAX_TIME = 8.64e15;

export const isString: Check = (value) => typeof value === 'string';
export const isNumber: Check = (value) => typeof value === 'number';
export const isTime: Check = (value) => typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= MAX_TIME;
export const isObject: Check = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);
export const oneOf = (names: readonly string[]): Check => (value) => typeof value === 'string' && names.includes(value);
export const listOf = (check: Check): Check => (value) => Array.isArray(value) && value.every(check);
export const either = (...checks: Check[]): Check => (value) => checks.some((check) => check(value));
export const optional = (check: Check): Check => either((value) => value === undefined, check);
export const orNull = (check: Check): Check => either((value) => value === null, check);
export const shaped = (fields: Record<string, Check>): Check => (value) =>
  isObject(value) && Object.entries(fields).every(([name, check]) => check((value as Record<string, unknown>)[name]));
