/**
 * Meaning checks for `egress` and `dependencies`, run by the config
 * validator: addresses that clash, dependency URLs, TLS settings (as for
 * upstreams), and each simulation file, read and checked here so every
 * process serves the same pairs and a bad file never replaces a good one.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { defaultsAt } from '../config/defaults.js';
import type { Diagnostic } from '../config/diagnostics.js';
import type { DependencyConfig, EgressConfig } from '../config/types.js';
import { addressesClash, formatAddress, isLoopbackHost, type ListenAddress } from '../config/units.js';
import { checkUpstreamTls, type Reporter } from '../tls/check.js';
import { loadSimulation } from './simulation.js';

type Raw = Record<string, unknown>;

export interface EgressReporter extends Reporter {
  /** A problem located in another file (a simulation). */
  external(diagnostic: Diagnostic): void;
  /** The upstream URL check (normalizes the base path), shared with upstreams. */
  url(text: string, path: string): string | undefined;
}

export function checkEgress(
  raw: Raw | undefined,
  taken: readonly { name: string; address: ListenAddress }[],
  reporter: EgressReporter,
): EgressConfig | undefined {
  if (!raw) return undefined;
  const withHost = (a: unknown): ListenAddress | undefined => {
    if (!a || typeof a !== 'object') return undefined;
    const address = a as ListenAddress;
    // Egress listeners take the services' calls: loopback unless a host is given.
    return { host: address.host || '127.0.0.1', port: address.port };
  };
  const live = withHost(raw['live']);
  const dark = withHost(raw['dark']);
  const seen = [...taken];
  for (const [name, address] of [
    ['live', live],
    ['dark', dark],
  ] as const) {
    if (!address) continue;
    const clash = seen.find((t) => addressesClash(t.address, address));
    if (clash) reporter.error(`egress.${name}`, 'address-clash', `egress.${name}: ${formatAddress(address)} clashes with ${clash.name} ${formatAddress(clash.address)}`);
    seen.push({ name: `egress.${name}`, address });
    if (!isLoopbackHost(address.host)) {
      reporter.warn(
        `egress.${name}`,
        'egress-exposed',
        `egress.${name}: ${formatAddress(address)} is reachable beyond this machine; anyone who can reach it can call every dependency through the gateway (bind 127.0.0.1 or a private address the services alone reach)`,
      );
    }
  }
  return { live, dark };
}

export function checkDependencies(raw: Raw | undefined, baseDir: string, reporter: EgressReporter): Record<string, DependencyConfig> {
  const out: Record<string, DependencyConfig> = Object.create(null);
  for (const [name, value] of Object.entries(raw ?? {})) {
    if (!value || typeof value !== 'object') continue;
    const spec = value as Raw;
    const path = `dependencies.${name}`;
    if (typeof spec['url'] !== 'string') continue;
    const url = reporter.url(spec['url'], `${path}.url`);
    if (!url) continue;
    const tls = checkUpstreamTls(spec['tls'] as Raw | undefined, new URL(url), path, baseDir, reporter);
    let simulation: DependencyConfig['simulation'];
    if (typeof spec['simulation'] === 'string') {
      const file = resolve(baseDir, spec['simulation']);
      const nearby = relative(process.cwd(), file);
      const loaded = loadSimulation(file, nearby.startsWith('..') || isAbsolute(nearby) ? file : nearby);
      for (const d of loaded.diagnostics) reporter.external(d);
      if (!loaded.simulation && loaded.diagnostics.length > 0) {
        reporter.error(`${path}.simulation`, 'simulation', `${path}.simulation: "${spec['simulation']}" is not a usable simulation (see above)`);
      }
      simulation = loaded.simulation;
    }
    const ignoreBody = ((spec['ignoreBody'] as unknown[] | undefined) ?? []).filter((p, i): p is string => {
      if (typeof p !== 'string') return false;
      if (/~(?![01])/.test(p)) {
        reporter.error(`${path}.ignoreBody[${i}]`, 'pointer', `${path}.ignoreBody[${i}]: "${p}" is not a JSON Pointer ("~" must be written ~0, "/" inside a key ~1)`);
        return false;
      }
      return true;
    });
    out[name] = {
      name,
      url,
      ...(tls ? { tls } : {}),
      simulation,
      // Items the shape pass refused stay in the list as markers (reported there).
      passthrough: ((spec['passthrough'] as unknown[] | undefined) ?? []).filter((m): m is string => typeof m === 'string').map((m) => m.toUpperCase()),
      ignoreBody,
      waitMs: (spec['wait'] as number | undefined) ?? defaultsAt('dependencies.*')['wait'],
    };
  }
  return out;
}
