/** Configs more than one test uses. */

/** Every request to `primary`, copied to a shadow that never answers; a budget of 200 copies. */
export function hungShadowConfig(primaryUrl: string, hungUrl: string): string {
  return `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { primary: ${primaryUrl}, hung: ${hungUrl} }
limits: { shadowInflight: 200 }
timeouts: { shadow: 60s }
routes:
  - name: all
    backends: [{ upstream: primary }]
    shadow: [{ upstream: hung }]
`;
}
