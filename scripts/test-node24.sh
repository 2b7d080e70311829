#!/usr/bin/env bash
# Runs the compiled test suite on Node 24, from the npm package `node@24`
# (a Node binary published to the registry like any package).
#
# It is installed under .node24/, not into node_modules: a node_modules/.bin/node
# would shadow the system Node for every npm script (npm puts
# node_modules/.bin first on PATH), so `npm test` would silently run on 24.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE24=.node24/node_modules/node/bin/node
if [ ! -x "$NODE24" ] || ! "$NODE24" --version | grep -q '^v24\.'; then
  npm install --no-save --no-package-lock --no-audit --no-fund --prefix .node24 node@24 >/dev/null
fi
"$NODE24" --version

# Build with the project's own Node (the same output either way).
npm run build >/dev/null
exec "$NODE24" --test --test-concurrency=1 --test-reporter=tap dist/test/*/*.test.js
