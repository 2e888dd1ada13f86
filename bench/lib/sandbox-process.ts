import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./sandbox-child.ts', import.meta.url));

export interface SandboxProcess {
  url: string;
  pid: number;
  close(): Promise<void>;
}

export class SandboxStartError extends Error {
  override name = 'SandboxStartError';
}

/** Start the sandbox in a child process and wait for its URL. */
export async function startSandboxChild(opts: { latencyMs: number }): Promise<SandboxProcess> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script, String(opts.latencyMs)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const first = await Promise.race([
    once(lines, 'line').then(([l]) => String(l)),
    once(child, 'exit').then(([code]) => {
      throw new SandboxStartError(`sandbox child exited with ${code} before listening`);
    }),
  ]);
  lines.close();
  const { url } = JSON.parse(first) as { url: string };
  return {
    url,
    pid: child.pid!,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}
