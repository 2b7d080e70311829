/**
 * What a reload changed, in words for one log line, and which changed
 * settings only take effect after a restart (never half-applied).
 */
import type { GatewayConfig, RouteConfig } from './types.js';
import { formatAddress } from './units.js';

export interface ConfigChange {
  readonly summary: string[];
  readonly restartRequired: string[];
}

export function describeChange(before: GatewayConfig, after: GatewayConfig): ConfigChange {
  const summary: string[] = [];
  const restartRequired: string[] = [];
  const oldRoutes = new Map(before.routes.map((r) => [r.name, r]));
  const newRoutes = new Map(after.routes.map((r) => [r.name, r]));
  for (const name of newRoutes.keys()) if (!oldRoutes.has(name)) summary.push(`route ${name} added`);
  for (const name of oldRoutes.keys()) if (!newRoutes.has(name)) summary.push(`route ${name} removed`);
  for (const [name, route] of newRoutes) {
    const old = oldRoutes.get(name);
    if (old) summary.push(...routeChanges(old, route));
  }
  const order = (routes: readonly RouteConfig[]) => routes.map((r) => r.name).filter((n) => oldRoutes.has(n) && newRoutes.has(n)).join(',');
  if (order(before.routes) !== order(after.routes)) summary.push('route order changed');

  for (const [name, u] of Object.entries(after.upstreams)) {
    const old = before.upstreams[name];
    if (!old) summary.push(`upstream ${name} added`);
    else if (JSON.stringify(old) !== JSON.stringify(u)) summary.push(`upstream ${name} changed`);
  }
  for (const name of Object.keys(before.upstreams)) if (!after.upstreams[name]) summary.push(`upstream ${name} removed`);
  const deps = (c: GatewayConfig) => c.dependencies ?? {};
  for (const [name, d] of Object.entries(deps(after))) {
    const old = deps(before)[name];
    if (!old) summary.push(`dependency ${name} added`);
    else if (JSON.stringify(old) !== JSON.stringify(d)) summary.push(`dependency ${name} changed`);
  }
  for (const name of Object.keys(deps(before))) if (!deps(after)[name]) summary.push(`dependency ${name} removed`);
  for (const side of ['live', 'dark'] as const) {
    const a = before.egress?.[side];
    const b = after.egress?.[side];
    const shown = (x: typeof a) => (x ? formatAddress(x) : 'off');
    if (shown(a) !== shown(b)) restartRequired.push(`egress.${side} ${shown(a)} -> ${shown(b)}`);
  }
  if (JSON.stringify(before.limits) !== JSON.stringify(after.limits)) summary.push('limits changed');
  if (JSON.stringify(before.timeouts) !== JSON.stringify(after.timeouts)) summary.push('timeouts changed');
  if (before.trustedProxies.join() !== after.trustedProxies.join()) summary.push('trusted proxies changed');
  if (before.admin.token !== after.admin.token) summary.push('admin token changed');
  if (before.stateDir !== after.stateDir) restartRequired.push(`stateDir ${before.stateDir} -> ${after.stateDir}`);
  if (Boolean(before.tls) !== Boolean(after.tls)) restartRequired.push(`tls ${before.tls ? 'on' : 'off'} -> ${after.tls ? 'on' : 'off'} (HTTP vs HTTPS listener)`);
  else if (before.tls && after.tls) {
    const redirect = (c: GatewayConfig) => (c.tls?.redirectHttp ? formatAddress(c.tls.redirectHttp) : 'none');
    if (redirect(before) !== redirect(after)) restartRequired.push(`tls.redirectHttp ${redirect(before)} -> ${redirect(after)}`);
    if (JSON.stringify(before.tls.certificates) !== JSON.stringify(after.tls.certificates)) summary.push('tls certificates changed');
    if (before.tls.minVersion !== after.tls.minVersion) summary.push(`tls minVersion ${before.tls.minVersion} -> ${after.tls.minVersion}`);
  }

  if (formatAddress(before.listen) !== formatAddress(after.listen)) {
    restartRequired.push(`listen ${formatAddress(before.listen)} -> ${formatAddress(after.listen)}`);
  }
  if (formatAddress(before.admin) !== formatAddress(after.admin)) {
    restartRequired.push(`admin ${formatAddress(before.admin)} -> ${formatAddress(after.admin)}`);
  }
  if (before.limits.maxHeaderBytes !== after.limits.maxHeaderBytes) {
    restartRequired.push(`limits.maxHeaderBytes ${before.limits.maxHeaderBytes} -> ${after.limits.maxHeaderBytes}`);
  }
  return { summary, restartRequired };
}

function routeChanges(old: RouteConfig, route: RouteConfig): string[] {
  const out: string[] = [];
  const weights = (r: RouteConfig) => r.backends.map((b) => `${b.upstream}=${b.weight}`).join(' ');
  if (weights(old) !== weights(route)) out.push(`route ${route.name} weights ${weights(old)} -> ${weights(route)}`);
  const shadows = (r: RouteConfig) => r.shadow.map((s) => `${s.upstream}@${s.percent}%`).join(' ') || 'none';
  if (JSON.stringify(old.shadow) !== JSON.stringify(route.shadow)) {
    out.push(`route ${route.name} shadows ${shadows(old)} -> ${shadows(route)}`);
  }
  if (JSON.stringify(old.match) !== JSON.stringify(route.match)) out.push(`route ${route.name} match changed`);
  if (JSON.stringify(old.sticky) !== JSON.stringify(route.sticky)) out.push(`route ${route.name} sticky changed`);
  if (JSON.stringify(old.diff) !== JSON.stringify(route.diff)) out.push(`route ${route.name} diff settings changed`);
  if (JSON.stringify(old.release) !== JSON.stringify(route.release)) {
    out.push(`route ${route.name} release ${route.release ? `of ${route.release.candidate} ${old.release ? 'changed' : 'added'}` : 'removed'}`);
  }
  return out;
}
