/**
 * A log-bucketed latency histogram (1% wide buckets): fixed memory whatever the number of
 * samples, so recording a million charges does not itself grow the heap the benchmark measures.
 */
export interface Histogram {
  record(ms: number): void;
  count(): number;
  /** The exact mean in milliseconds. */
  mean(): number;
  /** The q-quantile (0..1) in milliseconds, within 1%. */
  quantile(q: number): number;
}

const GROWTH = Math.log(1.01);
const FLOOR_MS = 0.01;
const BUCKETS = 2000; // 0.01 ms * 1.01^2000 is far beyond any timeout

export function createHistogram(): Histogram {
  const buckets = new Float64Array(BUCKETS);
  let n = 0;
  let sum = 0;
  return {
    record(ms) {
      const i = ms <= FLOOR_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / FLOOR_MS) / GROWTH));
      buckets[i] = (buckets[i] ?? 0) + 1;
      n++;
      sum += ms;
    },
    count: () => n,
    mean: () => (n === 0 ? 0 : sum / n),
    quantile(q) {
      if (n === 0) return 0;
      const target = Math.max(1, Math.ceil(q * n));
      let seen = 0;
      for (let i = 0; i < BUCKETS; i++) {
        seen += buckets[i] ?? 0;
        if (seen >= target) return FLOOR_MS * Math.exp(i * GROWTH);
      }
      return FLOOR_MS * Math.exp((BUCKETS - 1) * GROWTH);
    },
  };
}
