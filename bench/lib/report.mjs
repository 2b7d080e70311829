// Medians over rounds, the four target ratios, and the Markdown report.

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

const METRICS = ['rps', 'p50', 'p99', 'peakRss', 'peakRssOne', 'cpuUsPerReq', 'cpuAllUsPerReq', 'errors'];

/** One row per setup: the median of every metric over its successful rounds. */
export function summarize(setups, rounds) {
  const rows = {};
  for (const setup of setups) {
    const runs = rounds.map((r) => r[setup.name]).filter(Boolean);
    const ok = runs.filter((r) => !r.error && !r.unsupported);
    const row = { name: setup.name, label: setup.label, rounds: ok.length };
    if (ok.length === 0) {
      const failed = runs.find((r) => r.unsupported) ?? runs.find((r) => r.error);
      row.status = failed?.unsupported ? `n/a (not supported: ${failed.unsupported})` : `failed: ${failed?.error ?? 'not run'}`;
    } else {
      for (const m of METRICS) row[m] = median(ok.map((r) => r[m]));
      row.processes = Math.max(...ok.map((r) => r.processes ?? 1));
      const shadow = ok.map((r) => r.shadow).filter(Boolean);
      if (shadow.length) row.shadow = shadow[shadow.length - 1];
    }
    rows[setup.name] = row;
  }
  return rows;
}

const MB = 1024 * 1024;

/**
 * The targets of the issue, from the medians of one run. Each ratio also
 * comes as the median and range of the same ratio taken round by round
 * (setups of one round ran minutes apart, under the same drift).
 */
export function checkTargets(rows, rounds = []) {
  const r = (name) => (rows[name] && rows[name].rps !== undefined ? rows[name] : undefined);
  const ratio = (a, b, field = 'rps') => (a && b && b[field] ? a[field] / b[field] : undefined);
  const paired = (a, b, field = 'rps') => {
    const values = rounds
      .map((round) => (round[a] && round[b] && !round[a].error && !round[b].error ? ratio(round[a], round[b], field) : undefined))
      .filter((x) => x !== undefined && Number.isFinite(x));
    if (values.length < 2) return '';
    return `per round: median ${fmtRatio(median(values))}, ${fmtRatio(Math.min(...values))}–${fmtRatio(Math.max(...values))}`;
  };
  const join = (...parts) => parts.filter(Boolean).join('; ');
  const checks = [];
  const add = (id, what, value, target, pass, note = '') =>
    checks.push({ id, what, value, target, verdict: value === undefined ? 'n/a' : pass ? 'PASS' : 'FAIL', note });

  const gw = r('gw');
  const bare = r('bare');
  const v1 = ratio(gw, bare);
  // CPU per request moves less than req/s when other work shares the cores.
  const cpu = (a, b) => {
    const x = ratio(a, b, 'cpuUsPerReq');
    return x === undefined ? '' : `CPU per request ${fmtRatio(x)}`;
  };
  add(1, 'gatewayctl without shadow / bare http-proxy (req/s)', v1, '≥ 1.0', v1 >= 1.0, join(paired('gw', 'bare'), cpu(gw, bare)));

  const gwShadow = r('gw-shadow');
  const v2 = ratio(gwShadow, gw);
  const refBare = ratio(r('bare-shadow'), bare);
  const refNginx = ratio(r('nginx-mirror'), r('nginx'));
  const noCompare = gwShadow?.shadow && !comparing(gwShadow) ? 'no comparison ran (gatewayctl_shadow_comparisons_total stayed 0)' : '';
  add(2, 'gatewayctl 100% shadow / gatewayctl without shadow (req/s)', v2, '≥ 0.7', v2 >= 0.7,
    join(paired('gw-shadow', 'gw'), cpu(gwShadow, gw), `for reference: bare Node ${fmtRatio(refBare)}, nginx ${fmtRatio(refNginx)}`, noCompare));

  const w2 = r('gw-w2-shadow');
  const v3 = ratio(w2, r('nginx-mirror'));
  add(3, 'gatewayctl --workers 2, 100% shadow / nginx + mirror (req/s)', v3, '≥ 1.0', v3 >= 1.0,
    join(paired('gw-w2-shadow', 'nginx-mirror'), rows['gw-w2-shadow']?.status ?? ''));

  const slow = r('gw-shadow-slow');
  const v4a = ratio(slow, r('nginx-mirror-slow'));
  add('4a', 'gatewayctl 500 ms shadow / nginx + mirror 500 ms shadow (req/s)', v4a, '≥ 20', v4a >= 20,
    paired('gw-shadow-slow', 'nginx-mirror-slow'));
  const v4b = ratio(slow, gwShadow, 'p99');
  add('4b', 'gatewayctl p99: 500 ms shadow / fast shadow', v4b, '≤ 2.0', v4b <= 2.0, paired('gw-shadow-slow', 'gw-shadow', 'p99'));
  const perWorker = slow ? slow.peakRssOne / MB : undefined;
  const peaks = rounds.map((round) => round['gw-shadow-slow']?.peakRssOne).filter((x) => x > 0);
  add('4c', 'gatewayctl 500 ms shadow: peak RSS per worker (MB)', perWorker, '< 150', perWorker < 150,
    peaks.length > 1 ? `per round: ${(Math.min(...peaks) / MB).toFixed(0)}–${(Math.max(...peaks) / MB).toFixed(0)} MB` : '');
  return checks;
}

export function fmtRatio(x) {
  return x === undefined ? 'n/a' : `${x.toFixed(2)}×`;
}

const fmtInt = (x) => (x === undefined ? '' : Math.round(x).toLocaleString('en-US'));
const fmtMs = (x) => (x === undefined ? '' : x < 10 ? `${x.toFixed(2)} ms` : `${x.toFixed(0)} ms`);
const fmtMb = (x) => (x === undefined ? '' : `${(x / MB).toFixed(0)} MB`);
const fmtUs = (x) => (x === undefined ? '' : `${x.toFixed(0)} µs`);

function rssCell(row) {
  if (row.processes > 1) return `${fmtMb(row.peakRss)} (${row.processes} procs, max ${fmtMb(row.peakRssOne)})`;
  return fmtMb(row.peakRss);
}

/** Whether the gateway counted any comparison (gatewayctl_shadow_comparisons_total). */
function comparing(row) {
  return Object.keys(row?.shadow ?? {}).some((k) => k.startsWith('compared_'));
}

function shadowCell(row) {
  const s = row.shadow;
  if (!s) return '';
  const parts = Object.entries(s)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${fmtInt(v)}`);
  if (s.completed > 0 && !comparing(row)) parts.push('no comparisons counted');
  return parts.join(', ');
}

export function markdown({ title, machine, params, setups, rows, checks, rounds }) {
  const out = [];
  out.push(`# ${title}`, '');
  out.push(
    `Machine: ${machine.nproc} cores (${machine.cpu}), ${machine.memGb} GB, Linux ${machine.kernel}; ` +
      `node ${machine.node}, nginx ${machine.nginx}, ${machine.wrk}; load average ${machine.loadBefore} before, ${machine.loadAfter} after${machine.neighbours ? `; other processes using the CPU before: ${machine.neighbours}` : ''}.`,
  );
  out.push(
    `gatewayctl ${machine.gatewayctl}. Load: wrk -t${params.threads} -c${params.connections} -d${params.duration}s --latency, ` +
      `${params.warmup}s warm-up (${params.nginxWarmup ?? params.warmup}s for nginx and direct), ${params.rounds} interleaved rounds (order rotated each round), medians; ` +
      `every setup started fresh each round; 300-byte JSON from an nginx upstream (${params.upstreamWorkers} workers); ` +
      `nginx proxies with ${params.nginxWorkers} workers.`,
  );
  out.push('');
  out.push('| setup | req/s | p50 | p99 | peak RSS | CPU/req (proxy) | CPU/req (all servers) | errors | shadow copies (last round) |');
  out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const setup of setups) {
    const row = rows[setup.name];
    if (!row) continue;
    if (row.status) {
      out.push(`| ${setup.label} | ${row.status} | | | | | | | |`);
      continue;
    }
    out.push(
      `| ${setup.label} | ${fmtInt(row.rps)} | ${fmtMs(row.p50)} | ${fmtMs(row.p99)} | ${rssCell(row)} | ` +
        `${fmtUs(row.cpuUsPerReq)} | ${fmtUs(row.cpuAllUsPerReq)} | ${fmtInt(row.errors)} | ${shadowCell(row)} |`,
    );
  }
  out.push('');
  out.push('| # | target | measured | wanted | verdict | note |');
  out.push('| --- | --- | ---: | ---: | --- | --- |');
  for (const c of checks) {
    const value = c.value === undefined ? 'n/a' : c.id === '4c' ? `${c.value.toFixed(0)} MB` : fmtRatio(c.value);
    out.push(`| ${c.id} | ${c.what} | ${value} | ${c.target} | ${c.verdict} | ${c.note} |`);
  }
  out.push('');
  out.push('Per-round req/s (round order rotates):', '');
  out.push(`| setup | ${rounds.map((_, i) => `round ${i + 1}`).join(' | ')} |`);
  out.push(`| --- | ${rounds.map(() => '---:').join(' | ')} |`);
  for (const setup of setups) {
    const cells = rounds.map((r) => {
      const x = r[setup.name];
      if (!x) return '';
      if (x.unsupported) return 'n/a';
      if (x.error) return 'error';
      return fmtInt(x.rps);
    });
    out.push(`| ${setup.name} | ${cells.join(' | ')} |`);
  }
  out.push('');
  out.push(
    'CPU/req (proxy) is the CPU time (user + system, from /proc) of the process under test and its workers divided by the requests wrk completed; ' +
      '"all servers" adds the upstream nginx and the shadows. Peak RSS is the largest sum of VmRSS over the process group, sampled every 200 ms ' +
      'from start to the end of the measured run. Errors are wrk socket errors plus non-2xx answers.',
  );
  return out.join('\n') + '\n';
}
