import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startWorker } from '../../bench/lib/worker-cli.ts';
import type { World } from './world.ts';

export const rebillBin = fileURLToPath(new URL('../../bin/rebill.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run `rebill ARGS` as a child process with exactly the given environment (plus PATH). */
export async function runCli(
  args: string[],
  env: Record<string, string>,
  opts: { timeoutMs?: number } = {},
): Promise<CliResult> {
  const worker = startWorker({ argv: [rebillBin], dispose: () => {} }, args, env);
  const timer = setTimeout(() => worker.kill(), opts.timeoutMs ?? 120_000);
  try {
    return await worker.done;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The environment CLI child processes run with against a world: its own, plus a PGlite data
 * directory the processes take in turn when there is no PostgreSQL; `dispose` removes it.
 */
export function cliEnv(w: World): { env: Record<string, string>; dispose: () => void } {
  const env = { ...w.env };
  if (w.t.url) return { env, dispose: () => {} };
  const dir = mkdtempSync(join(tmpdir(), 'rebill-cli-'));
  env.REBILL_DATA_DIR = dir;
  return { env, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}
