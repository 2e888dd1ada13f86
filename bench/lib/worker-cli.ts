import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** How to start `rebill`: argv prefix for `node`, and a clean-up. */
export interface RebillCommand {
  argv: string[];
  dispose(): void;
}

/**
 * `rebill` for the soak's many short-lived workers. Under tsx every start costs seconds of
 * CPU resolving modules through the loader thread, which would make the soak measure module
 * loading; so the same sources are bundled once with esbuild (tsx's own dependency) into
 * node_modules/.cache, two levels below the root so `import.meta.url`-relative paths such as
 * the migrations folder resolve as from src/db. `mode: 'tsx'` runs bin/rebill.js as shipped.
 */
export async function rebillCommand(mode: 'bundle' | 'tsx'): Promise<RebillCommand> {
  if (mode === 'tsx') return { argv: [`${root}bin/rebill.js`], dispose: () => {} };
  const { build } = await import('esbuild');
  const outfile = `${root}node_modules/.cache/rebill-soak-${process.pid}.mjs`;
  await build({
    stdin: {
      contents: "import { main } from './src/cli/main.ts'; await main(process.argv);",
      resolveDir: root,
      loader: 'ts',
      sourcefile: 'rebill-soak-entry.ts',
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile,
    logLevel: 'warning',
  });
  return { argv: [outfile], dispose: () => rmSync(outfile, { force: true }) };
}

export interface WorkerResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A running `rebill` child; `kill()` is SIGKILL: no clean-up, as a crash. */
export interface Worker {
  done: Promise<WorkerResult>;
  kill(): void;
}

export function startWorker(cmd: RebillCommand, args: string[], env: Record<string, string>): Worker {
  const started = performance.now();
  const child = spawn(process.execPath, [...cmd.argv, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<WorkerResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started }),
    );
  });
  return {
    done,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
