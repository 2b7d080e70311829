/**
 * What a release does to its route: the config as written, with the
 * candidate's traffic share and shadow applied. The stable backends keep
 * their relative weights and scale down together, so sticky users only ever
 * move onto the candidate as its share grows (weighted rendezvous hashing).
 */
import type { GatewayConfig, RouteConfig, ShadowConfig } from '../config/types.js';
import { SAFE_METHODS } from '../config/validate.js';
import { trafficFor, type ReleaseState } from './machine.js';

/**
 * With a dark egress, the candidate's side effects go through it (and are
 * compared, not repeated), so the shadow step mirrors writes too.
 */
const ALL_METHODS: readonly string[] = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** Weights are integers; shares are kept to a hundredth of a percent. */
const SCALE = 10_000;

export function applyReleases(config: GatewayConfig, states: ReadonlyMap<string, ReleaseState>): GatewayConfig {
  let changed = false;
  const routes = config.routes.map((route) => {
    const state = states.get(route.name);
    if (!route.release || !state || state.candidate !== route.release.candidate) return route;
    changed = true;
    return routeWithRelease(route, state, config.egress?.dark ? ALL_METHODS : SAFE_METHODS);
  });
  return changed ? { ...config, routes } : config;
}

function routeWithRelease(route: RouteConfig, state: ReleaseState, shadowMethods: readonly string[]): RouteConfig {
  const release = route.release!;
  const { weight, shadow } = trafficFor(state, release);
  const share = Math.round(weight * (SCALE / 100));
  const stableTotal = route.backends.reduce((sum, b) => sum + b.weight, 0);
  const backends =
    share === 0
      ? route.backends
      : share >= SCALE
        ? [...route.backends.map((b) => ({ upstream: b.upstream, weight: 0 })), { upstream: release.candidate, weight: 1 }]
        : [
            ...route.backends.map((b) => ({ upstream: b.upstream, weight: b.weight * (SCALE - share) })),
            { upstream: release.candidate, weight: stableTotal * share },
          ];
  const mirror: readonly ShadowConfig[] = shadow
    ? [
        ...route.shadow,
        {
          upstream: release.candidate,
          percent: release.shadowPercent,
          methods: shadowMethods,
          setHeaders: {},
          removeHeaders: [],
          credentials: 'forward',
          host: undefined,
          streaming: false,
        },
      ]
    : route.shadow;
  return { ...route, backends, shadow: mirror };
}
