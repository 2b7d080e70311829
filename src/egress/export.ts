/**
 * Live recordings as a Hoverfly simulation (schema v5), so calls captured
 * here can be simulated by Hoverfly, or loaded back as a dependency's
 * `simulation`. Each recorded call becomes one pair matching its method,
 * destination, scheme, path, query and body exactly (JSON bodies with the
 * `json` matcher, so formatting does not matter). A call the dependency
 * never answered (the gateway's own 502/504) is left out and counted: as a
 * pair it would simulate an outage the dependency never had.
 */
import { isUtf8 } from 'node:buffer';
import type { CompiledDependency } from '../config/compile.js';
import type { LiveCall } from './recordings.js';

/** The admin answer's header naming how many recorded calls the export left out. */
export const LEFT_OUT_HEADER = 'x-gatewayctl-left-out';

const exact = (value: string) => [{ matcher: 'exact', value }];
const JSON_TYPE = /^application\/(?:[\w.+-]*\+)?json\b/i;

export interface RecordingsExport {
  readonly simulation: unknown;
  /** Calls left out: answered by the gateway, not the dependency. */
  readonly leftOut: number;
}

export function recordingsSimulation(dependency: CompiledDependency, calls: readonly LiveCall[], now = new Date()): RecordingsExport {
  const target = dependency.upstream.target;
  const answered = calls.filter((call) => !call.byGateway);
  const pairs = answered.map((call) => {
    // Names are the call's: a parameter or header named __proto__ is one like any other.
    const query: Record<string, { matcher: string; value: string }[]> = Object.create(null);
    const values = new Map<string, string[]>();
    for (const [k, v] of new URLSearchParams(call.query)) values.set(k, [...(values.get(k) ?? []), v]);
    for (const [k, v] of values) query[k] = exact(v.join(';'));
    const contentType = String(call.headers['content-type'] ?? '');
    const request: Record<string, unknown> = {
      method: exact(call.method),
      destination: exact(target.host),
      scheme: exact(target.protocol.slice(0, -1)),
      path: exact(call.targetPath),
      query,
    };
    if (call.body.length > 0) {
      const text = call.body.toString('utf8');
      let json = false;
      if (JSON_TYPE.test(contentType)) {
        try {
          JSON.parse(text);
          json = true;
        } catch {
          json = false;
        }
      }
      request['body'] = [{ matcher: json ? 'json' : 'exact', value: text }];
    }
    const response = call.response!;
    const text = isUtf8(response.body);
    const headers: Record<string, string[]> = Object.create(null);
    for (const [k, v] of Object.entries(response.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v : [String(v)];
    return {
      request,
      response: {
        status: response.status,
        body: text ? response.body.toString('utf8') : response.body.toString('base64'),
        encodedBody: !text,
        headers,
        templated: false,
      },
    };
  });
  return {
    simulation: {
      data: { pairs, globalActions: { delays: [], delaysLogNormal: [] } },
      meta: { schemaVersion: 'v5.2', timeExported: now.toISOString() },
    },
    leftOut: calls.length - answered.length,
  };
}
