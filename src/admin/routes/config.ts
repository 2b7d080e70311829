/**
 * How GET /config and POST /reload answer: the running snapshot with its
 * secrets redacted, and a reload's outcome (a refused config is a 422 with
 * every diagnostic).
 */
import type { Snapshot } from '../../config/compile.js';
import type { ConfigChange } from '../../config/describe-change.js';
import { diagnosticJson, type Diagnostic } from '../../config/diagnostics.js';
import { ErrorCodes, httpStatusOf } from '../../errors.js';
import { digest } from '../../tls/pem.js';
import type { AdminReply } from './core.js';

/** What a reload came to, as far as its answer needs (the control plane's ReloadResult fits). */
export type ReloadOutcome =
  | { readonly status: 'applied'; readonly snapshot: Snapshot; readonly change: ConfigChange; readonly warnings: readonly Diagnostic[] }
  | { readonly status: 'unchanged'; readonly snapshot: Snapshot }
  | { readonly status: 'rejected'; readonly diagnostics: readonly Diagnostic[]; readonly message: string };

/** The config in effect, as GET /config shows it (the control plane's accepted config fits). */
export type ConfigInEffect = Pick<Snapshot, 'config' | 'generation' | 'hash' | 'loadedAt' | 'source'>;

/** JSON view of the config in effect for GET /config; secrets redacted. */
export function describeSnapshot(snapshot: ConfigInEffect): unknown {
  const config = snapshot.config;
  return {
    generation: snapshot.generation,
    hash: snapshot.hash,
    loadedAt: snapshot.loadedAt.toISOString(),
    source: snapshot.source,
    config: {
      ...config,
      admin: { ...config.admin, token: config.admin.token ? '(set)' : undefined },
      upstreams: withoutCaText(config.upstreams),
    },
  };
}

/** CA bundles are shown by path and digest, not as pages of PEM. */
function withoutCaText(upstreams: Snapshot['config']['upstreams']): unknown {
  const out: Record<string, unknown> = {};
  for (const [name, u] of Object.entries(upstreams)) {
    out[name] = u.tls?.caPem ? { ...u, tls: { ...u.tls, caPem: `sha256:${digest(u.tls.caPem)}` } } : u;
  }
  return out;
}

export function reloadReply(result: ReloadOutcome): AdminReply {
  switch (result.status) {
    case 'applied':
      return {
        status: 200,
        body: {
          generation: result.snapshot.generation,
          changed: result.change.summary,
          restartRequired: result.change.restartRequired,
          warnings: result.warnings.map(diagnosticJson),
        },
      };
    case 'unchanged':
      return { status: 200, body: { generation: result.snapshot.generation, changed: [], unchanged: true } };
    case 'rejected':
      return {
        status: httpStatusOf(ErrorCodes.CONFIG_INVALID),
        body: { error: result.message, code: ErrorCodes.CONFIG_INVALID, errors: result.diagnostics.map(diagnosticJson) },
      };
  }
}
