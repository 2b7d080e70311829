/**
 * The commented starter config `gatewayctl init` writes: valid as it
 * stands, and a tour of the keys a first dark launch and canary need.
 */
export const STARTER_CONFIG = `# gatewayctl config. Check it:  gatewayctl validate
#                    Run it:    gatewayctl serve
# Saved changes take effect within a few seconds; a bad edit is refused and
# the running config kept.

listen: 0.0.0.0:8080          # where users connect ("host:port" or a port)
admin: 127.0.0.1:9901         # metrics, reload, live diffs: keep it on loopback

upstreams:                    # name -> base URL (http:// or https://)
  app-v1: http://127.0.0.1:7001     # what runs in production today
  app-v2: http://127.0.0.1:7002     # the new version

routes:                       # first match wins, in this order
  - name: app
    match:
      prefix: /               # every path; narrow it to /api, /shop, ...
    backends:                 # who answers users, by relative weight
      - upstream: app-v1
        weight: 100
      # Canary: uncomment to send 5% of users to v2.
      # - upstream: app-v2
      #   weight: 5
    # sticky:                 # keep each user on one version
    #   header: x-user-id
    shadow:                   # dark launch: copies of GET/HEAD/OPTIONS go to v2;
      - upstream: app-v2      # users never see its answers; \`gatewayctl diff\`
        percent: 10           # shows where they differ from v1's
    # diff:
    #   ignorePaths: [/meta/requestId]

timeouts:
  upstream: 30s
  shadow: 10s
`;
