// Small time charts in SVG: a few series of [time ms, value] points over a
// window ending now.
import { svg } from './dom.js';

const WIDTH = 320;
const HEIGHT = 72;
const PAD = { left: 30, right: 6, top: 6, bottom: 14 };

/**
 * series: [{ name, points: [[t, v], ...], className, step }]; a `step`
 * series holds its value until the next point and up to now. The chart
 * spans at most `windowMs`, and less while the data is younger (at least a
 * minute), so a page just opened draws across its whole width.
 */
export function timeChart({ series, windowMs: maxWindowMs, now = Date.now(), max, unit = '', label }) {
  const earliest = Math.min(now, ...series.flatMap((s) => s.points.map((p) => p[0])));
  const windowMs = Math.min(maxWindowMs, Math.max(60_000, (now - earliest) * 1.05));
  const start = now - windowMs;
  const top = Math.max(max ?? 0, ...series.flatMap((s) => s.points.map((p) => p[1])), 1);
  const x = (t) => PAD.left + ((Math.max(t, start) - start) / windowMs) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => PAD.top + (1 - v / top) * (HEIGHT - PAD.top - PAD.bottom);
  const lines = series.map((s) => {
    const points = [];
    const visible = s.points.filter((p, i) => p[0] >= start || (s.step && s.points[i + 1]?.[0] >= start) || (s.step && i === s.points.length - 1));
    for (const [i, [t, v]] of visible.entries()) {
      if (s.step && i > 0) points.push(`${x(t).toFixed(1)},${y(visible[i - 1][1]).toFixed(1)}`);
      points.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    }
    if (s.step && visible.length > 0) points.push(`${x(now).toFixed(1)},${y(visible.at(-1)[1]).toFixed(1)}`);
    return svg('polyline', { points: points.join(' '), class: `series ${s.className ?? ''}` }, svg('title', null, s.name));
  });
  return svg(
    'svg',
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'chart', role: 'img', 'aria-label': label ?? 'time chart' },
    svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0), class: 'axis' }),
    svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(top), y2: y(top), class: 'grid' }),
    svg('text', { x: PAD.left - 3, y: y(top) + 4, class: 'tick', 'text-anchor': 'end' }, `${roundTop(top)}${unit}`),
    svg('text', { x: PAD.left - 3, y: y(0) + 3, class: 'tick', 'text-anchor': 'end' }, `0`),
    svg('text', { x: PAD.left, y: HEIGHT - 2, class: 'tick' }, windowMs < 120_000 ? `−${Math.round(windowMs / 1000)} s` : `−${Math.round(windowMs / 60000)} min`),
    svg('text', { x: WIDTH - PAD.right, y: HEIGHT - 2, class: 'tick', 'text-anchor': 'end' }, 'now'),
    lines,
  );
}

function roundTop(value) {
  return value >= 10 ? Math.round(value) : Math.round(value * 10) / 10;
}

/** Per-key time series kept in memory: the last `windowMs` of samples. */
export class History {
  constructor(windowMs) {
    this.windowMs = windowMs;
    this.series = new Map();
  }
  add(key, t, value) {
    let points = this.series.get(key);
    if (!points) this.series.set(key, (points = []));
    points.push([t, value]);
    while (points.length > 0 && points[0][0] < t - this.windowMs) points.shift();
  }
  get(key) {
    return this.series.get(key) ?? [];
  }
}
