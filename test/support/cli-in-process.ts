import { type Command, CommanderError } from 'commander';
import { afterAll, beforeAll, vi } from 'vitest';
import { buildProgram } from '../../src/cli/main.ts';
import { exitCodeFor } from '../../src/cli/output.ts';
import { errorMessage } from '../../src/errors.ts';
import { cliEnv } from './cli.ts';
import { startWorld, type World } from './world.ts';

export interface InProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The program's commands at every depth (`mandates`, then `mandates create`, ...). */
function allCommands(c: Command): Command[] {
  return c.commands.flatMap((sub) => [sub, ...allCommands(sub)]);
}

/**
 * The CLI run in this process: call inside a `describe`. Its beforeAll starts a world (the
 * sandbox and this file's database) and points the environment at it, as a child's would be;
 * its afterAll puts the environment back as it was when this was called and closes the world.
 * `cli(...args)` runs one command through the CLI's own parser and code, its output and exit
 * code read as a child's would be (standard output and standard error are captured, not replaced;
 * a usage error exits 2, any other error is written as `rebill: <message>` with its exit code).
 */
export function cliInProcess(): {
  /** The world, once the beforeAll has run. */
  world: () => World;
  cli: (...args: string[]) => Promise<InProcessResult>;
} {
  let w: World;
  let dispose: () => void;
  const saved = { ...process.env };
  beforeAll(async () => {
    w = await startWorld();
    const e = cliEnv(w);
    dispose = e.dispose;
    Object.assign(process.env, e.env);
  });
  afterAll(async () => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    dispose?.();
    await w?.close();
  });

  async function cli(...args: string[]): Promise<InProcessResult> {
    let stdout = '';
    let stderr = '';
    const out = vi.spyOn(process.stdout, 'write').mockImplementation((c) => {
      stdout += String(c);
      return true;
    });
    const err = vi.spyOn(process.stderr, 'write').mockImplementation((c) => {
      stderr += String(c);
      return true;
    });
    let code = 0;
    try {
      const p = buildProgram();
      for (const c of [p, ...allCommands(p)])
        c.configureOutput({ writeErr: (s) => (stderr += s), writeOut: (s) => (stdout += s) });
      await p.parseAsync(args, { from: 'user' });
      code = Number(process.exitCode ?? 0);
    } catch (e) {
      code = e instanceof CommanderError ? 2 : exitCodeFor(e);
      if (!(e instanceof CommanderError)) stderr += `rebill: ${errorMessage(e)}\n`;
    } finally {
      out.mockRestore();
      err.mockRestore();
      process.exitCode = undefined;
    }
    return { code, stdout, stderr };
  }

  return { world: () => w, cli };
}
