import { samplesFromText } from '../../src/metrics/read.js';

/** Reads values out of Prometheus text for assertions: the sum of the series `name` over samples with these labels; 0 when there is none. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels);
  let total = 0;
  for (const s of samplesFromText(text)) {
    if (s.name === name && want.every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}
