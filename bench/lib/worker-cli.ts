import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** How to start `rebill`: argv prefix for `node`, and a clean-up. */
export interface RebillCommand {
  argv: string[];
  dispose(): void;
}

/**
 * `rebill` for the soak's many short-lived workers: the CLI bundle scripts/build.js makes (what
 * `npm install` puts in dist/), built once into a directory of the soak's own so a test run
 * beside it never sees dist/ rewritten. `mode: 'tsx'` runs bin/rebill.js from the sources.
 */
export async function rebillCommand(mode: 'bundle' | 'tsx'): Promise<RebillCommand> {
  if (mode === 'tsx') return { argv: [`${root}bin/rebill.js`], dispose: () => {} };
  // @ts-expect-error plain JavaScript module without type declarations
  const { buildCli } = (await import('../../scripts/build.js')) as {
    buildCli(outdir: string): Promise<string>;
  };
  const outdir = `${root}node_modules/.cache/rebill-soak-${process.pid}`;
  await buildCli(outdir);
  const entry = join(outdir, 'main.mjs');
  writeFileSync(entry, "import { main } from './rebill.mjs';\nawait main(process.argv);\n");
  return { argv: [entry], dispose: () => rmSync(outdir, { recursive: true, force: true }) };
}

export interface WorkerResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** The child's peak RSS, sampled from /proc every 250 ms (null where there is no /proc). */
  peakRssBytes: number | null;
}

/** A running `node` child; `kill()` is SIGKILL: no clean-up, as a crash. */
export interface Worker {
  done: Promise<WorkerResult>;
  kill(): void;
}

/**
 * `node ARGV` as a child process with exactly `env`, its output collected. The soak's workers,
 * the tests' `rebill` children and the CI soak all start through this.
 */
export function startNode(argv: string[], env: NodeJS.ProcessEnv): Worker {
  const started = performance.now();
  const child = spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  // The child's peak resident set (Linux: VmHWM), read every 250 ms while it runs: the last
  // reading before it exits is its peak within that interval.
  let peakRssBytes: number | null = null;
  const sample = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peakRssBytes = Math.max(peakRssBytes ?? 0, Number(m[1]) * 1024);
    } catch {
      // gone, or not Linux
    }
  };
  const sampler = setInterval(sample, 250);
  const done = new Promise<WorkerResult>((resolve, reject) => {
    child.on('error', (err) => {
      clearInterval(sampler);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearInterval(sampler);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started, peakRssBytes });
    });
  });
  return {
    done,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** A `rebill` worker with the given environment (plus PATH and HOME). */
export function startWorker(cmd: RebillCommand, args: string[], env: Record<string, string>): Worker {
  return startNode([...cmd.argv, ...args], {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    ...env,
  });
}
