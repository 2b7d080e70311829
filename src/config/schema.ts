/**
 * The shape of a config file, declared once. The validator walks YAML nodes
 * against it (shape errors with line:col), and config/gatewayctl.schema.json
 * is generated from it for editors, so the two cannot drift apart.
 * Meaning checks (references, clashes, coverage) live in validate.ts.
 */
import { DURATION_PATTERN, SIZE_PATTERN } from './units.js';

interface BaseSpec {
  readonly description?: string;
  /** The built-in value: shown in the JSON Schema and the docs, applied by validate.ts (through defaults.ts). */
  readonly default?: unknown;
}

export interface ObjectSpec extends BaseSpec {
  readonly type: 'object';
  readonly properties: Readonly<Record<string, Spec>>;
  readonly required?: readonly string[];
  /** Exactly one of these keys must be present. */
  readonly exactlyOne?: readonly string[];
}
export interface MapSpec extends BaseSpec {
  readonly type: 'map';
  readonly values: Spec;
  readonly keyPattern?: string;
  readonly keyDescription?: string;
}
export interface ArraySpec extends BaseSpec {
  readonly type: 'array';
  readonly items: Spec;
  readonly minItems?: number;
  readonly maxItems?: number;
}
export interface StringSpec extends BaseSpec {
  readonly type: 'string';
  readonly enum?: readonly string[];
  readonly pattern?: string;
  readonly patternHint?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
}
export interface IntegerSpec extends BaseSpec {
  readonly type: 'integer';
  readonly minimum?: number;
  readonly maximum?: number;
}
export interface NumberSpec extends BaseSpec {
  readonly type: 'number';
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
}
export interface BooleanSpec extends BaseSpec {
  readonly type: 'boolean';
}
/** `500ms`, `10s`, `2m`, `1h`, or 0. */
export interface DurationSpec extends BaseSpec {
  readonly type: 'duration';
}
/** Bytes, or `16kb`/`10mb`/`1gb`. */
export interface SizeSpec extends BaseSpec {
  readonly type: 'size';
  readonly minimum?: number;
  readonly maximum?: number;
}
/** `host:port` or a port number. */
export interface AddressSpec extends BaseSpec {
  readonly type: 'address';
}
/** One spec per YAML node kind: a value that may be a scalar or a mapping. */
export interface UnionSpec extends BaseSpec {
  readonly type: 'union';
  /** For a number, when given; else numbers go to `scalar` too. */
  readonly number?: Spec;
  readonly scalar?: Spec;
  readonly map?: Spec;
  readonly seq?: Spec;
}

export type Spec =
  | ObjectSpec
  | MapSpec
  | ArraySpec
  | StringSpec
  | IntegerSpec
  | NumberSpec
  | BooleanSpec
  | DurationSpec
  | SizeSpec
  | AddressSpec
  | UnionSpec;

export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]*$';
const NAME_HINT = 'letters, digits, "-", "_" and "." (starting with a letter or digit)';
const TOKEN_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
const TOKEN_HINT = 'an HTTP token (letters, digits and !#$%&\'*+.^_`|~-)';

const name = (description: string): StringSpec => ({
  type: 'string',
  pattern: NAME_PATTERN,
  patternHint: NAME_HINT,
  maxLength: 128,
  description,
});

const headerName: StringSpec = { type: 'string', pattern: TOKEN_PATTERN, patternHint: TOKEN_HINT, maxLength: 256 };
const method: StringSpec = {
  type: 'string',
  pattern: TOKEN_PATTERN,
  patternHint: TOKEN_HINT,
  maxLength: 32,
  description: 'An HTTP method, e.g. GET.',
};
const methods = (description: string, dflt?: readonly string[]): ArraySpec => ({
  type: 'array',
  items: method,
  minItems: 1,
  description,
  ...(dflt ? { default: dflt } : {}),
});
const duration = (description: string, dflt?: string): DurationSpec => ({
  type: 'duration',
  description,
  ...(dflt ? { default: dflt } : {}),
});
const size = (description: string, dflt: string | number): SizeSpec => ({ type: 'size', description, default: dflt });

const upstreamUrl: StringSpec = {
  type: 'string',
  pattern: '^[hH][tT][tT][pP][sS]?://',
  patternHint: 'an http:// or https:// URL',
  description: 'Base URL of the upstream: http:// or https://.',
};

const jsonPointer: StringSpec = {
  type: 'string',
  pattern: '^(/.*)?$',
  patternHint: 'a JSON Pointer starting with "/"',
  maxLength: 1024,
};

const pemFile = (description: string): StringSpec => ({ type: 'string', minLength: 1, maxLength: 4096, description });
const hostName: StringSpec = {
  type: 'string',
  maxLength: 253,
  pattern: '^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$',
  patternHint: 'a DNS host name',
};

const upstreamTls: ObjectSpec = {
  type: 'object',
  description: "How an https:// upstream's certificate is verified.",
  properties: {
    ca: pemFile('PEM bundle of the CAs to trust instead of the system CAs; relative to the config file.'),
    serverName: { ...hostName, description: "Name sent (SNI) and verified; default: the URL's host. Needed when the URL holds an IP address the certificate does not list." },
    insecureSkipVerify: {
      type: 'boolean',
      default: false,
      description: "Accept any certificate: no protection against impersonation. validate warns.",
    },
  },
};

const certificatePair: ObjectSpec = {
  type: 'object',
  description: 'A certificate and its private key.',
  required: ['cert', 'key'],
  properties: {
    cert: pemFile('PEM certificate chain, leaf first; relative to the config file.'),
    key: pemFile('PEM private key of the certificate (unencrypted); relative to the config file.'),
  },
};

const listenerTls: ObjectSpec = {
  type: 'object',
  description: 'Serve HTTPS: certificates (picked by SNI), reloaded when their files change.',
  properties: {
    cert: pemFile('Default certificate chain (PEM), leaf first; relative to the config file.'),
    key: pemFile('Private key of the default certificate (PEM, unencrypted).'),
    certificates: {
      type: 'array',
      minItems: 1,
      items: certificatePair,
      description: 'More certificates, chosen by the server name clients send (SNI); the first is the default when cert/key are absent.',
    },
    minVersion: { type: 'string', enum: ['TLSv1.2', 'TLSv1.3'], default: 'TLSv1.2', description: 'Oldest TLS version accepted.' },
    redirectHttp: {
      type: 'address',
      description: 'A plain-HTTP listener ("host:port" or a port) that redirects every request to HTTPS.',
    },
  },
};

const endpointObject: ObjectSpec = {
  type: 'object',
  description: 'An endpoint with a weight or a name of its own.',
  required: ['url'],
  properties: {
    url: { ...upstreamUrl, description: 'URL of this instance: scheme and base path as the other endpoints.' },
    weight: {
      type: 'integer',
      minimum: 1,
      maximum: 1000,
      default: 1,
      description: 'Relative share of requests when the endpoints are equally busy.',
    },
    name: name('Name in metrics and status; default: its position in the list, from 0.'),
  },
};

const healthCheck: ObjectSpec = {
  type: 'object',
  description: "Active health checks: a GET to each endpoint every interval; 2xx or 3xx is a pass.",
  required: ['path'],
  properties: {
    path: { type: 'string', pattern: '^/', patternHint: 'a path starting with "/"', maxLength: 2048, description: 'Path checked, after the URL\'s base path.' },
    interval: duration('Time between checks of one endpoint.', '5s'),
    timeout: duration('A check without an answer within this fails.', '1s'),
    healthyThreshold: { type: 'integer', minimum: 1, maximum: 100, default: 2, description: 'Passes in a row that bring an endpoint back.' },
    unhealthyThreshold: { type: 'integer', minimum: 1, maximum: 100, default: 3, description: 'Failures in a row that take an endpoint out.' },
  },
};

const outlierDetection: ObjectSpec = {
  type: 'object',
  description: 'Passive ejection: an endpoint that fails requests in a row is taken out for a while.',
  properties: {
    consecutiveFailures: {
      type: 'integer',
      minimum: 1,
      maximum: 1000,
      default: 5,
      description: 'Connect failures, resets, timeouts or 5xx answers in a row that eject an endpoint.',
    },
    baseEjectionTime: duration('First ejection; each further ejection of the same endpoint lasts this times the count (capped at 10x).', '30s'),
    maxEjectionPercent: {
      type: 'integer',
      minimum: 0,
      maximum: 100,
      default: 50,
      description: 'Largest share of the endpoints ejected at once (one endpoint may always be ejected).',
    },
  },
};

const retryOn: UnionSpec = {
  type: 'union',
  description: 'connect, reset, or an HTTP status 500-599.',
  scalar: { type: 'string', enum: ['connect', 'reset'] },
  number: { type: 'integer', minimum: 500, maximum: 599 },
};

const retry: ObjectSpec = {
  type: 'object',
  description:
    'Retries on another endpoint. connect and reset retry any method while nothing of the request reached the upstream; ' +
    'statuses retry only idempotent methods without a body; never once the response has started; within a retry budget.',
  properties: {
    attempts: { type: 'integer', minimum: 1, maximum: 10, default: 2, description: 'Tries in all, the first included; 1 turns retries off.' },
    on: { type: 'array', items: retryOn, default: ['connect', 'reset'], description: 'What a retry is for.' },
    budgetPercent: {
      type: 'number',
      minimum: 0,
      maximum: 100,
      default: 20,
      description: 'Retries allowed over 10 s, as a share of requests (besides 3 a second), so retries cannot multiply an outage.',
    },
  },
};

const upstreamObject: ObjectSpec = {
  type: 'object',
  description: 'An upstream with its own settings.',
  exactlyOne: ['url', 'endpoints'],
  properties: {
    url: upstreamUrl,
    endpoints: {
      type: 'array',
      minItems: 1,
      maxItems: 256,
      items: { type: 'union', scalar: upstreamUrl, map: endpointObject },
      description: 'Instances of this upstream (instead of url): URLs, or {url, weight, name}. Least-outstanding-requests balancing.',
    },
    healthCheck,
    outlierDetection,
    retry,
    poolTimeout: duration('Longest wait for a free pooled connection when maxSockets are all busy; then 503 pool_exhausted. Default: connectTimeout.'),
    timeout: duration('Upstream response timeout; overrides timeouts.upstream.'),
    connectTimeout: duration('Time allowed to open a connection.', '5s'),
    maxSockets: {
      type: 'integer',
      minimum: 1,
      maximum: 100000,
      description: 'Most connections open to this upstream at once (keep-alive pool size).',
      default: 256,
    },
    protocol: {
      type: 'string',
      enum: ['http1', 'h2', 'h2c'],
      default: 'http1',
      description:
        'How requests reach this upstream: http1 (HTTP/1.1, WebSocket too); h2 (HTTP/2 over TLS, an https:// URL); h2c (cleartext HTTP/2, an http:// URL). gRPC upstreams need h2 or h2c. HTTP/2 uses one pooled session per endpoint and carries trailers both ways.',
    },
    tls: upstreamTls,
  },
};

const backend: ObjectSpec = {
  type: 'object',
  description: 'A backend that receives user traffic.',
  required: ['upstream'],
  properties: {
    upstream: name('Name of an upstream.'),
    weight: {
      type: 'integer',
      minimum: 0,
      maximum: 1_000_000,
      default: 1,
      description: 'Relative weight; share = weight / sum of weights.',
    },
  },
};

const shadowTarget: ObjectSpec = {
  type: 'object',
  description: 'A mirrored copy of matching requests; its responses never reach the user.',
  required: ['upstream'],
  properties: {
    upstream: name('Name of the upstream that receives the copies.'),
    percent: {
      type: 'number',
      minimum: 0,
      maximum: 100,
      default: 100,
      description: 'Share of matching requests that are mirrored, 0-100.',
    },
    methods: methods('Methods that are mirrored. Anything beyond GET, HEAD and OPTIONS risks duplicate side effects.', [
      'GET',
      'HEAD',
      'OPTIONS',
    ]),
    streaming: {
      type: 'boolean',
      default: false,
      description:
        'Also mirror streaming gRPC calls (client, server and bidi streaming) to this h2/h2c upstream: the request stream is copied as it flows, within limits.shadowBodyBytes and the in-flight byte budget, and the answers are compared message by message up to diff.maxBodyBytes. Off: only unary calls are mirrored; a call found to stream is not (outcome "skipped").',
    },
    headers: {
      type: 'object',
      description: 'Header edits applied to the copy only.',
      properties: {
        set: {
          type: 'map',
          values: { type: 'string', maxLength: 8192 },
          keyPattern: TOKEN_PATTERN,
          keyDescription: 'header name',
          description: 'Headers to set (replacing any value) on the copy.',
        },
        remove: { type: 'array', items: headerName, description: 'Headers to remove from the copy.' },
      },
    },
    credentials: {
      type: 'string',
      enum: ['forward', 'strip'],
      default: 'forward',
      description:
        'forward: the copy carries the user\'s credentials, so the version under test serves the same user; strip: Authorization, Cookie, Proxy-Authorization, API-key and token headers and secret query parameters are removed from the copy.',
    },
    host: {
      type: 'string',
      maxLength: 255,
      pattern: '^[A-Za-z0-9.:\\[\\]-]+$',
      patternHint: 'a host name, optionally with a port',
      description: 'Host header for the copy; by default the original Host is kept.',
    },
  },
};

const diffSettings: ObjectSpec = {
  type: 'object',
  description: 'How primary and shadow responses are compared.',
  properties: {
    enabled: { type: 'boolean', default: true, description: 'Compare mirrored pairs (turn off to only mirror).' },
    ignoreHeaders: {
      type: 'array',
      items: headerName,
      description: 'Response headers not compared, on top of the built-in noisy ones.',
    },
    ignorePaths: {
      type: 'array',
      items: {
        type: 'string',
        maxLength: 1024,
      },
      description:
        'Paths not compared: JSON Pointers ("*" matches any one segment), or HTML/XML node paths such as "html > body > form > input@value" (a node and everything below it, or one attribute with "@name").',
    },
    endpoints: {
      type: 'array',
      maxItems: 500,
      items: {
        type: 'string',
        pattern: '^/.*$',
        patternHint: 'a request path template starting with "/", segments such as {id} matching any one segment',
        maxLength: 512,
      },
      description:
        'Endpoint templates ("/api/products/{id}") that group requests for noise, verdicts and latency; other paths are grouped by inferred templates (numeric, UUID, hex and long-token segments become {id}).',
    },
    tolerance: {
      type: 'map',
      keyPattern: '^/.*$',
      keyDescription: 'a JSON Pointer ("*" matches any one segment)',
      values: {
        type: 'union',
        description: 'A relative tolerance (0.01 = 1%), or {absolute: N} / {relative: N}.',
        number: { type: 'number', minimum: 0 },
        map: {
          type: 'object',
          exactlyOne: ['absolute', 'relative'],
          properties: {
            absolute: { type: 'number', minimum: 0, description: 'Numbers at most this far apart are equal.' },
            relative: { type: 'number', minimum: 0, description: 'Numbers at most this share apart are equal.' },
          },
        },
      },
      description: 'Numbers this close are equal, per JSON Pointer (relative by default).',
    },
    unordered: {
      type: 'array',
      maxItems: 500,
      items: { type: 'string', pattern: '^/.*$', patternHint: 'a JSON Pointer starting with "/"', maxLength: 1024 },
      description: 'Arrays compared as multisets (order ignored), per JSON Pointer ("*" matches any one segment).',
    },
    latency: {
      type: 'object',
      description: 'Per-endpoint latency comparison of the shadow with its primary.',
      properties: {
        maxRatio: {
          type: 'number',
          minimum: 1,
          default: 1.5,
          description: 'An endpoint whose shadow is confidently slower than this multiple of its primary gets a latency difference.',
        },
      },
    },
    baseline: name('A second instance of the primary version; differences it shows too are noise.'),
    maxBodyBytes: {
      ...size(
        'Largest response body captured per side for comparison; a longer answer is compared by its length and a SHA-256 of the whole body. At most 16mb: parsing one pair happens in a shadow thread whose heap is bounded (256 MB), and a 16 MB JSON body already takes about a hundred MB to parse.',
        '1mb',
      ),
      maximum: 16 * 1024 * 1024,
    },
    protoDescriptors: {
      type: 'string',
      minLength: 1,
      maxLength: 4096,
      description:
        'FileDescriptorSet (protoc --include_imports --descriptor_set_out) declaring the services this route serves: gRPC answers are compared with field names ("/items/0/name"), else by field number ("/1/3"); relative to the config file.',
    },
  },
};

const releaseSpec: ObjectSpec = {
  type: 'object',
  description: "Move this route's traffic to a candidate step by step: dark launch, canary steps, promotion, each gated on live evidence.",
  required: ['candidate'],
  properties: {
    candidate: name('The upstream being released.'),
    steps: {
      type: 'array',
      minItems: 1,
      maxItems: 50,
      default: ['shadow', 10, 50, 100],
      description: '"shadow" (dark launch: mirror, compare) first if at all, then canary percentages in rising order.',
      items: {
        type: 'union',
        description: '"shadow", or a canary percentage (0-100].',
        scalar: { type: 'string', enum: ['shadow'] },
        number: { type: 'number', exclusiveMinimum: 0, maximum: 100 },
      },
    },
    shadowPercent: {
      type: 'number',
      minimum: 0,
      maximum: 100,
      default: 100,
      description: 'Share of matching requests mirrored to the candidate during the shadow step.',
    },
    interval: duration('At least this long in each step.', '2m'),
    minRequests: {
      type: 'integer',
      minimum: 1,
      maximum: 100_000_000,
      default: 200,
      description: 'Candidate requests (or compared pairs, in the shadow step) a step needs before it is judged.',
    },
    gates: {
      type: 'object',
      description: 'Limits the candidate must keep; each is judged with a statistical test.',
      properties: {
        maxErrorRate: { type: 'number', minimum: 0, maximum: 1, default: 0.01, description: "Candidate's 5xx share." },
        maxErrorRateIncrease: {
          type: 'number',
          minimum: 0,
          maximum: 1,
          default: 0.005,
          description: "Candidate's 5xx share minus the stable backends' share.",
        },
        maxLatencyRatio: {
          type: 'number',
          minimum: 1,
          maximum: 100,
          default: 1.25,
          description: "Candidate's p99 latency over the stable backends' p99.",
        },
        maxDiffRate: {
          type: 'number',
          minimum: 0,
          maximum: 1,
          default: 0.02,
          description: 'Shadow step: share of compared pairs with real (non-noise) differences.',
        },
      },
    },
    onFailure: { type: 'string', enum: ['rollback', 'pause'], default: 'rollback', description: 'What a failed gate does.' },
    maxStepDuration: duration(
      'Longest a step may wait for conclusive evidence (at least `interval`); then `onTimeout` decides. No deadline when unset.',
    ),
    onTimeout: {
      type: 'string',
      enum: ['pass', 'pause'],
      default: 'pause',
      description:
        'At `maxStepDuration`: pass, when no gate is failing and `minRequests` were seen (the reason is recorded); or pause for a person.',
    },
    controller: {
      type: 'string',
      enum: ['gateway', 'external'],
      default: 'gateway',
      description: 'gateway: this gateway drives the release; external: `gatewayctl release run` drives it across replicas.',
    },
  },
};

/** Fields of an access log line (src/log/access-log.ts), in the order written. */
export const ACCESS_LOG_FIELDS = [
  'time',
  'requestId',
  'client',
  'route',
  'upstream',
  'endpoint',
  'method',
  'path',
  'status',
  'bytes',
  'durationMs',
  'upstreamMs',
  'retries',
  'shadow',
] as const;

const accessLog: ObjectSpec = {
  type: 'object',
  description: 'One line per request, written off the request path; reopened on SIGUSR1 or when the file is renamed.',
  required: ['path'],
  properties: {
    path: { type: 'string', minLength: 1, maxLength: 4096, description: '"stdout", or a file (appended to; relative to the config file).' },
    format: {
      type: 'string',
      enum: ['json', 'combined'],
      default: 'json',
      description: 'json: one object per line; combined: the Apache/NGINX combined format, the other fields appended as key=value.',
    },
    fields: {
      type: 'array',
      items: { type: 'string', enum: [...ACCESS_LOG_FIELDS] },
      minItems: 1,
      description: 'Fields written (json); default: all.',
    },
    headers: {
      type: 'array',
      items: headerName,
      description: 'Request headers written (allow-list). Credentials (Authorization, Cookie, and any name that looks like a secret) are refused.',
    },
  },
};

const pathsSpec = (description: string, dflt?: string): ObjectSpec => ({
  type: 'object',
  description,
  properties: {
    escapedSlashes: {
      type: 'string',
      enum: ['reject', 'keep'],
      ...(dflt ? { default: dflt } : {}),
      description: 'An encoded slash (%2F) in a path: reject answers 400; keep leaves it in its segment, for matching and upstream. See docs/security.md.',
    },
  },
});

const route: ObjectSpec = {
  type: 'object',
  description: 'A route: which requests it takes, where they go, what is mirrored.',
  required: ['name', 'backends'],
  properties: {
    name: name('Route name, used in metrics, logs and diffs.'),
    match: {
      type: 'object',
      description: 'Every field is optional; all given must hold. No match block matches everything.',
      properties: {
        prefix: {
          type: 'string',
          pattern: '^/',
          patternHint: 'a path starting with "/"',
          maxLength: 2048,
          description: 'Path prefix on segment boundaries: /shop matches /shop and /shop/x, not /shopping.',
        },
        methods: methods('Request methods.'),
        headers: {
          type: 'map',
          values: { type: 'string', maxLength: 8192 },
          keyPattern: TOKEN_PATTERN,
          keyDescription: 'header name',
          description: 'Exact header values; names are case-insensitive.',
        },
        host: {
          type: 'string',
          maxLength: 255,
          pattern: '^(\\*\\.)?[A-Za-z0-9.-]+$',
          patternHint: 'a host name, or *.example.com',
          description: 'Host header (port ignored, case-insensitive); "*.example.com" matches subdomains.',
        },
        grpc: {
          type: 'boolean',
          description: 'true: only gRPC calls (content-type application/grpc, application/grpc+proto, ...); false: only other requests. Match a service or method with prefix: /package.Service or /package.Service/Method.',
        },
      },
    },
    paths: pathsSpec('How this route treats request paths; default: the top-level paths.'),
    backends: {
      type: 'array',
      minItems: 1,
      items: backend,
      description: 'Where user traffic goes, split by weight.',
    },
    sticky: {
      type: 'object',
      description: 'Keep each user on one backend, keyed by a header or a cookie.',
      exactlyOne: ['header', 'cookie'],
      properties: {
        header: { ...headerName, description: 'Header holding the user key.' },
        cookie: {
          type: 'string',
          pattern: TOKEN_PATTERN,
          patternHint: 'a cookie name',
          maxLength: 256,
          description: 'Cookie holding the user key.',
        },
      },
    },
    shadow: { type: 'array', items: shadowTarget, description: 'Mirrored copies.' },
    diff: diffSettings,
    release: releaseSpec,
  },
};

const limits: ObjectSpec = {
  type: 'object',
  description: 'Resource limits.',
  properties: {
    maxHeaderCount: {
      type: 'integer',
      minimum: 1,
      maximum: 10000,
      default: 100,
      description: 'More request headers than this: 431.',
    },
    maxHeaderBytes: size('A larger request head: 431.', '16kb'),
    maxBodyBytes: size('A larger request body: 413.', '10mb'),
    shadowInflight: {
      type: 'integer',
      minimum: 0,
      maximum: 1_000_000,
      default: 1000,
      description: 'Shadow copies in flight at once; beyond it copies are dropped and counted.',
    },
    shadowBodyBytes: size('Larger request bodies are not mirrored (outcome "skipped").', '1mb'),
    shadowShedAbove: {
      type: 'number',
      minimum: 0.5,
      maximum: 1,
      default: 0.9,
      description:
        "The serving thread's event-loop utilization (0.5-1) at or above which shadow copies are shed, users first: measured every 250 ms, the share of copies sent halves each time, down to 1/128, and grows back once utilization is 0.15 below it. Shed copies count as dropped; gatewayctl_shadow_admitted_ratio shows the share. 1: never shed.",
    },
    shadowInflightBytes: size(
      'Bytes held for shadowing at once, at each stage: request copies and captured answers awaiting comparison, answers still being captured (by a shadow thread, or by the serving thread for copies to HTTP/2 upstreams), primary answers past diff.maxBodyBytes on their way to a shadow thread to be hashed (at most 12 MB of those), pairs queued for comparison. A copy that would pass it is dropped (counted); an answer that would is not compared (counted as dropped). Every byte held is process memory on top of about 100 MB of its own.',
      '32mb',
    ),
    compareQueue: {
      type: 'integer',
      minimum: 1,
      maximum: 1_000_000,
      default: 1000,
      description: 'Mirrored pairs waiting for comparison; beyond it pairs are dropped and counted.',
    },
    compareThreads: {
      type: 'integer',
      minimum: 0,
      maximum: 64,
      default: 0,
      description:
        'Shadow threads per serving process: they compare mirrored pairs off the serving thread, and the first also sends the shadow copies. 0 sizes them to the cores (the cores per process less one, 1 to 4). Read when the first starts; a change takes effect on restart.',
    },
    maxConnections: {
      type: 'integer',
      minimum: 1,
      maximum: 10_000_000,
      description:
        'Client connections open at once on the listener. At the cap the connection resting longest (idle keep-alive, or silent since accept) is closed for a new one; when none rests, the new one is refused (503). Default: half the file descriptors the process may open, less 256 kept for the admin API and files, at most 100000.',
    },
    maxConnectionsPerClient: {
      type: 'integer',
      minimum: 1,
      maximum: 10_000_000,
      description: 'Client connections open at once from one peer address; beyond it refused (429). trustedProxies are exempt. Default: no limit.',
    },
    recordBytes: size('Live egress calls kept for pairing with dark ones; beyond it the oldest go first (counted).', '64mb'),
    h2MaxConcurrentStreams: {
      type: 'integer',
      minimum: 1,
      maximum: 10000,
      default: 100,
      description: 'HTTP/2 clients: streams open at once per connection (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused with REFUSED_STREAM, and a client that keeps opening them loses the connection (GOAWAY).',
    },
    h2MaxResetsPerSecond: {
      type: 'integer',
      minimum: 1,
      maximum: 100000,
      default: 200,
      description: 'HTTP/2 clients: streams a connection may cancel (RST_STREAM) per second, averaged over 10 s; beyond it the connection is closed with GOAWAY ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487).',
    },
    h2MaxSessionMemory: size(
      'HTTP/2 clients: memory one connection may hold in its protocol state (header tables, queued frames); beyond it new streams are refused with ENHANCE_YOUR_CALM. Header size and count are bounded by maxHeaderBytes and maxHeaderCount, as for HTTP/1.1.',
      '10mb',
    ),
  },
};

const timeouts: ObjectSpec = {
  type: 'object',
  description: 'Timeouts.',
  properties: {
    header: duration("Time to receive a request's head, counted from accept (TLS handshake included) for a connection's first request.", '10s'),
    idle: duration('Keep-alive connection idle time, counted from the last response.', '60s'),
    body: duration('Longest pause while receiving a request body.', '30s'),
    websocketIdle: duration('An upgraded (WebSocket) connection with no traffic either way is closed.', '5m'),
    configSettle: duration(
      'Settle window for the watched config and certificate files: a change is applied once two reads this far apart agree. Longer pauses within one write apply it in parts: write a new file and rename it over the old one instead.',
      '2s',
    ),
    upstream: duration('Upstream response time, counted once the request body has been sent (an upload may take longer), unless the upstream sets its own.', '30s'),
    shadow: duration("A shadow copy's whole exchange.", '10s'),
    drain: duration('Graceful shutdown: longest wait for in-flight requests.', '30s'),
    record: duration('How long a live egress call is kept for pairing with dark ones.', '30s'),
  },
};

const egress: ObjectSpec = {
  type: 'object',
  description: "Listeners between the services and their HTTP dependencies: a service reaches dependency NAME at http://EGRESS/NAME/PATH.",
  properties: {
    live: { type: 'address', description: 'Outbound calls of the live versions: forwarded to the dependency and recorded.' },
    dark: { type: 'address', description: 'Outbound calls of dark versions: replayed, simulated, passed through or refused; never reach a dependency unless allowed.' },
  },
};

const dependency: ObjectSpec = {
  type: 'object',
  description: 'An HTTP dependency of the services (payment provider, mailer, another API), reached through the egress.',
  required: ['url'],
  properties: {
    url: { ...upstreamUrl, description: 'Base URL of the real dependency: http:// or https://.' },
    tls: upstreamTls,
    simulation: {
      type: 'string',
      minLength: 1,
      maxLength: 4096,
      description: 'Hoverfly simulation file (schema v5) answering dark calls with no live twin; relative to the config file.',
    },
    passthrough: {
      type: 'array',
      items: method,
      description: 'Dark calls with these methods may reach the real dependency (default none).',
    },
    ignoreBody: {
      type: 'array',
      items: jsonPointer,
      description: 'JSON Pointers left out when comparing calls ("*" matches any one segment; "" is the whole body).',
    },
    wait: duration('How long a dark call waits for its live twin.', '2s'),
  },
};

const hostPort: AddressSpec = { type: 'address', description: '"host:port" or a port number.' };

const admin: UnionSpec = {
  type: 'union',
  description: 'Admin API address, loopback unless you say otherwise.',
  default: '127.0.0.1:9901',
  scalar: hostPort,
  map: {
    type: 'object',
    required: ['listen'],
    properties: {
      listen: hostPort,
      token: {
        type: 'string',
        minLength: 16,
        maxLength: 4096,
        description: 'Bearer token required by admin calls that change state.',
      },
      allowedHosts: {
        type: 'array',
        maxItems: 256,
        description:
          'Host names the admin API answers besides IP addresses and localhost (e.g. a pod or Service name Prometheus scrapes); other names are refused against DNS rebinding.',
        items: { ...hostName, description: 'A DNS name, without port.' },
      },
    },
  },
};

export const configSpec: ObjectSpec = {
  type: 'object',
  description: 'gatewayctl configuration, version 1.',
  required: ['upstreams', 'routes'],
  properties: {
    version: { type: 'integer', minimum: 1, maximum: 1, default: 1, description: 'Config format version.' },
    listen: {
      type: 'union',
      default: '0.0.0.0:8080',
      description: 'Gateway address: "host:port" or a port, or {address, h2c}.',
      scalar: hostPort,
      map: {
        type: 'object',
        required: ['address'],
        properties: {
          address: hostPort,
          h2c: {
            type: 'boolean',
            default: false,
            description:
              'Also serve cleartext HTTP/2 (prior knowledge, as gRPC clients speak it) on this listener, beside HTTP/1.1. With tls, HTTP/2 is offered by ALPN whatever this says.',
          },
        },
      },
    },
    admin,
    upstreams: {
      type: 'map',
      keyPattern: NAME_PATTERN,
      keyDescription: 'upstream name',
      description: 'Upstreams by name: a URL, or an object with url and settings.',
      values: { type: 'union', scalar: upstreamUrl, map: upstreamObject },
    },
    routes: {
      type: 'array',
      items: route,
      description: 'Routes, tried in file order; the first that matches takes the request.',
    },
    stateDir: {
      type: 'string',
      minLength: 1,
      maxLength: 4096,
      default: './state',
      description: 'Where release progress is kept so a restart resumes it (/var/lib/gatewayctl under systemd).',
    },
    trustedProxies: {
      type: 'array',
      items: {
        type: 'string',
        pattern: '^[0-9A-Fa-f:.]+(/\\d{1,3})?$',
        patternHint: 'an IP address or CIDR range',
      },
      description: 'Peers (IPs or CIDR ranges) whose forwarding headers are trusted: X-Forwarded-For and Forwarded are extended, X-Forwarded-Proto, X-Forwarded-Host and X-Real-IP kept. From any other peer they are replaced.',
    },
    limits,
    timeouts,
    paths: pathsSpec('How request paths are treated.', 'reject'),
    accessLog,
    tls: listenerTls,
    egress,
    dependencies: {
      type: 'map',
      keyPattern: NAME_PATTERN,
      keyDescription: 'dependency name',
      description: 'Dependencies reached through the egress, by name.',
      values: dependency,
    },
  },
};

export { DURATION_PATTERN, SIZE_PATTERN };
