// @ts-check
/**
 * Lint for the whole repository: typescript-eslint's recommended rules, a
 * few type-aware rules that catch real bugs (dropped promises), the layering
 * of src/ into floors, no import cycles, and no private fields of libraries
 * or of Node. `npm run lint` runs this, the layout check and knip.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';

const root = import.meta.dirname;

/*
 * THE FLOORS of src/, lowest first. This table is the one place they are
 * written down (the README's Development > Layout section points here).
 * A module may import its own floor and the floors below it, never one
 * above. Each entry is a folder or a single file under src/; the longest
 * entry that contains a file places it, so a new file in a folder takes its
 * folder's floor, and a new folder under src/ must be added here (lint
 * fails until it is).
 *
 * Why this order:
 * - base: what everything uses and that uses nothing of ours: the error
 *   catalogue, the logger and its sinks, and the config vocabulary (the
 *   types of the document, units, diagnostics, reading a regular file).
 *   diff/secrets.ts decides which headers and parameters are secret; the
 *   access log, the validator and the shadows redact with it, so it sits
 *   here although it lives in diff/.
 * - model: the config pipeline, routing, metrics, statistics and protobuf
 *   decoding: pure functions of the config, the numbers and the bytes.
 * - clients: what talks to one upstream or judges one pair: TLS material and
 *   contexts, the upstream pools, the diff engine.
 * - request: what one request causes: the proxy (request path), shadows,
 *   egress to dependencies, releases.
 * - serving: listeners and the data plane. Never imports control.
 * - admin: the admin API and its client.
 * - control: config lifecycle, workers, the composition root.
 * - demo, then cli: the terminal. Nothing below cli/ imports cli/.
 */
const FLOORS = [
  ['base', ['errors.ts', 'embedded.ts', 'churn.ts', 'lazy-module.ts', 'json-shapes.ts', 'log', 'config/types.ts', 'config/units.ts', 'config/diagnostics.ts', 'config/regular-file.ts', 'diff/secrets.ts']],
  ['model', ['config', 'routing', 'metrics', 'stats', 'protobuf']],
  ['clients', ['tls', 'upstream', 'diff']],
  ['request', ['proxy', 'shadow', 'egress', 'release']],
  ['serving', ['serving']],
  ['admin', ['admin']],
  ['control', ['control']],
  ['demo', ['demo']],
  ['cli', ['cli']],
];

/*
 * Known exceptions: imports that climb a floor today, each with why and
 * when it goes. Keys are importing files, values the files they may import
 * (paths under src/). Keep this list short; the goal is an empty one.
 */
const EXCEPTIONS = {
  // The validator and compiler call each domain's own checker/compiler,
  // which read only the config vocabulary. Moving those checks below config
  // would split tls/ and egress/ in two for no gain.
  'config/validate.ts': ['tls/check.ts', 'egress/check.ts'],
  'config/compile.ts': ['tls/upstream.ts'],
  // The release controller reads other gateways through the admin client;
  // goes when the client moves below (issue 21, item 9: client on undici).
  'release/external.ts': ['admin/http-client.ts'],
  'release/sources.ts': ['admin/http-client.ts'],
  // A pair carries the dependency calls each side made, and comparison diffs
  // them with egress/call-diff.ts, which reads the egress's recording format
  // (egress/recordings.ts); moving both below would split the egress in two.
  'diff/compare-pair.ts': ['egress/call-diff.ts'],
  'diff/pair.ts': ['egress/call-diff.ts'],
  // The HTTPS listener and the redirect listener are serving code kept
  // beside the certificates; they use the proxy's connection guard and
  // error reply.
  'tls/listener.ts': ['proxy/connections.ts'],
  'tls/redirect.ts': ['proxy/responses.ts'],
};

const floorEntries = FLOORS.flatMap(([name, entries], level) => entries.map((entry) => ({ entry, name, level })));

/** The floor of a path under src/: the longest entry containing it. */
function floorOf(relative) {
  let best;
  for (const f of floorEntries) {
    if (relative === f.entry || relative.startsWith(f.entry + '/')) {
      if (!best || f.entry.length > best.entry.length) best = f;
    }
  }
  return best;
}

// A folder under src/ that no floor names would escape the rule: fail early.
for (const dirent of readdirSync(path.join(root, 'src'), { withFileTypes: true })) {
  if (!floorOf(dirent.name)) throw new Error(`eslint.config.js: src/${dirent.name} has no floor in FLOORS`);
}

/**
 * import-x/no-restricted-paths zones for the files of one floor: every
 * entry of a higher floor is off limits, except the files inside it that
 * sit at this floor or lower, and `allowed` (paths under src/).
 */
function zonesFor(level, allowed = []) {
  const targets = floorEntries.filter((f) => f.level === level).map((f) => `src/${f.entry}`);
  return floorEntries
    .filter((f) => f.level > level)
    .map((higher) => {
      const inside = (p) => p.startsWith(higher.entry + '/');
      const lowered = floorEntries.filter((f) => f.level <= level && inside(f.entry)).map((f) => f.entry);
      const except = [...lowered, ...allowed.filter(inside)].map((p) => './' + p.slice(higher.entry.length + 1));
      return {
        target: targets,
        from: `src/${higher.entry}`,
        ...(except.length ? { except } : {}),
        message: `${FLOORS[level][0]} (floor ${level}) must not import ${higher.name} (floor ${higher.level}): see FLOORS in eslint.config.js.`,
      };
    })
    .filter((zone) => !zone.target.includes(zone.from));
}

// Highest floor first: where a file's folder and the file itself are both
// listed (config/ and config/types.ts), the later, lower floor wins.
const layering = [
  ...FLOORS.map((_, level) => level).reverse().filter((level) => zonesFor(level).length).map((level) => ({
    files: floorEntries.filter((f) => f.level === level).map((f) => (f.entry.endsWith('.ts') ? `src/${f.entry}` : `src/${f.entry}/**/*.ts`)),
    rules: { 'import-x/no-restricted-paths': ['error', { basePath: root, zones: zonesFor(level) }] },
  })),
  ...Object.entries(EXCEPTIONS).map(([file, allowed]) => ({
    files: [`src/${file}`],
    rules: { 'import-x/no-restricted-paths': ['error', { basePath: root, zones: zonesFor(floorOf(file).level, allowed) }] },
  })),
];

/*
 * Private fields of libraries and of Node: a patch release may rename them.
 */
const PRIVATE_FIELDS = {
  webPasses: "MemberExpression[property.name='webPasses']",
  _httpMessage: "MemberExpression[property.name='_httpMessage']",
  'parser.incoming': "MemberExpression[property.name='incoming'][object.property.name='parser']",
};
/** Files allowed one of the fields above, with why. None today. */
const PRIVATE_FIELD_EXCEPTIONS = {};
// An exception naming a file that is gone has done its job: say so, so that
// it is deleted rather than left to excuse a future file of the same name.
for (const file of [...Object.entries(EXCEPTIONS).flat(2), ...Object.keys(PRIVATE_FIELD_EXCEPTIONS)]) {
  if (!existsSync(path.join(root, 'src', file))) throw new Error(`eslint.config.js: the exception for src/${file} is stale (no such file): remove it`);
}

function privateFieldRule(allowed = []) {
  const banned = Object.entries(PRIVATE_FIELDS).filter(([name]) => !allowed.includes(name));
  return ['error', ...banned.map(([name, selector]) => ({ selector, message: `'${name}' is a private field of a library or of Node: use a public API.` }))];
}

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**', '.node24/**', 'web/**', 'scripts/**', 'bench/**/*.mjs', 'bin/**'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: root },
    },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js'], extensionAlias: { '.js': ['.ts', '.js'] } })],
    },
    rules: {
      // tsc already checks these (noUnusedLocals, noUnusedParameters).
      '@typescript-eslint/no-unused-vars': 'off',
      // A dropped promise loses its rejection: the type-aware rules worth their cost.
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test() and describe() return promises the runner awaits.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-expressions': ['error', { allowShortCircuit: true, allowTernary: true }],
      // Closures handed to prom-client and to Node callbacks need the outer `this`.
      '@typescript-eslint/no-this-alias': 'off',
      // Escaping control characters in logged text is the point of those patterns.
      'no-control-regex': 'off',
      // Rethrown errors carry the cause's message; `cause` itself is optional.
      'preserve-caught-error': 'off',
      'no-restricted-syntax': privateFieldRule(),
    },
  },
  {
    // Only src/ can close a cycle: nothing imports a test.
    files: ['src/**/*.ts'],
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
  },
  {
    // Tests read loosely typed JSON answers and spell out wire bytes on purpose.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', 'no-regex-spaces': 'off', 'no-useless-assignment': 'off' },
  },
  {
    // The raw YAML document before shaping, and the defaults laid under it: any is their honest type.
    files: ['src/config/validate.ts', 'src/config/defaults.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Its reader marks a field bad and reports it in one comma expression.
    files: ['src/egress/simulation.ts'],
    rules: { '@typescript-eslint/no-unused-expressions': 'off' },
  },
  ...Object.entries(PRIVATE_FIELD_EXCEPTIONS).map(([file, allowed]) => ({
    files: [`src/${file}`],
    rules: { 'no-restricted-syntax': privateFieldRule(allowed) },
  })),
  ...layering,
);
