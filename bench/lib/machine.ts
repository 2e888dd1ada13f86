import { execFileSync } from 'node:child_process';
import { cpus, loadavg, release, totalmem, type } from 'node:os';

export interface Machine {
  cpuModel: string;
  cpuCount: number;
  totalMemoryBytes: number;
  node: string;
  os: string;
  /** 1-minute load average when measured: a shared machine's figures are only as good as this. */
  loadAverage1m: number;
}

/** What the figures were measured on: they mean nothing without it. */
export function machine(): Machine {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cpuCount: list.length,
    totalMemoryBytes: totalmem(),
    node: process.version,
    os: `${type()} ${release()}`,
    loadAverage1m: loadavg()[0] ?? 0,
  };
}

/** The commit measured (BENCH_COMMIT wins, for a copy of the tree without .git). */
export function commit(): string {
  if (process.env.BENCH_COMMIT) return process.env.BENCH_COMMIT;
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}
