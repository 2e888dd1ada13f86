import { fileURLToPath } from 'node:url';
import { startWorker } from '../../bench/lib/worker-cli.ts';

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
