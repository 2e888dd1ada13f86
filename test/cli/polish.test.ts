import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMandateSchema } from '../../src/billing/mandates/schemas.ts';
import { zero } from '../../src/billing/run/tally.ts';
import { buildProgram } from '../../src/cli/main.ts';
import { table } from '../../src/cli/output.ts';
import { formatRunReport } from '../../src/cli/run.ts';
import { cliLogLevel } from '../../src/cli/terminal.ts';
import { chargeMachine, mandateMachine } from '../../src/domain/lifecycle.ts';
import { rebillBin, runCli } from '../support/cli.ts';
import { startWorld, type World } from '../support/world.ts';

/** Every command of the program, with its path (`mandates create`). */
function commands(c: Command, path: string[] = []): { path: string; command: Command }[] {
  return c.commands.flatMap((sub) => {
    const p = [...path, sub.name()];
    return [{ path: p.join(' '), command: sub }, ...commands(sub, p)];
  });
}

/** A program that reports instead of printing: parse errors come back as CommanderError. */
function quietProgram(): Command {
  const program = buildProgram();
  for (const c of [program, ...commands(program).map((x) => x.command)])
    c.configureOutput({ writeErr: () => {}, writeOut: () => {} });
  return program;
}

async function parseError(args: string[]): Promise<CommanderError> {
  try {
    await quietProgram().parseAsync(args, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err;
    throw err;
  }
  throw new Error(`${args.join(' ')} parsed without an error`);
}

const choicesOf = (path: string, flag: string): readonly string[] | undefined =>
  commands(buildProgram())
    .find((c) => c.path === path)
    ?.command.options.find((o) => o.long === flag)?.argChoices;

describe('CLI polish', () => {
  describe('enum flags are validated as the API validates them', () => {
    const bogus: [string[], string][] = [
      [['mandates', 'create', '--intent', 'bogus'], '--intent'],
      [['mandates', 'create', '--gateway', 'paypol'], '--gateway'],
      [['mandates', 'create', '--settle-mode', 'half'], '--settle-mode'],
      [['mandates', 'list', '--intent', 'bogus'], '--intent'],
      [['mandates', 'list', '--status', 'bogus'], '--status'],
      [['mandates', 'update', '1', '--settle-mode', 'half'], '--settle-mode'],
      [['mandates', 'update', '1', '--proration', 'some'], '--proration'],
      [['charges', 'list', '--state', 'bogus'], '--state'],
      [['legacy', 'import', 'x.csv', '--format', 'xml'], '--format'],
      [['forecast', '--from', '2026-01-01', '--to', '2026-02-01', '--by', 'hour'], '--by'],
      [['exports', 'charges', '--from', '2026-01-01', '--to', '2026-02-01', '--format', 'xml'], '--format'],
      [['events', 'list', '--type', 'charge.bogus'], '--type'],
    ];
    it.each(bogus)('%j is refused naming %s', async (args, flag) => {
      const err = await parseError(args);
      expect(err.code).toBe('commander.invalidArgument');
      expect(err.message).toContain(`'${flag} `);
      expect(err.message).toContain('Allowed choices are');
    });

    it('the choices are the API schema’s and the state machines’ own', () => {
      const shape = createMandateSchema.shape;
      expect(choicesOf('mandates create', '--intent')).toEqual(shape.intent.options);
      expect(choicesOf('mandates list', '--intent')).toEqual(shape.intent.options);
      expect(choicesOf('mandates create', '--gateway')).toEqual(shape.gateway.unwrap().options);
      expect(choicesOf('mandates create', '--settle-mode')).toEqual(shape.settleMode.unwrap().options);
      expect(choicesOf('mandates update', '--settle-mode')).toEqual(shape.settleMode.unwrap().options);
      expect(choicesOf('mandates list', '--status')).toEqual(Object.keys(mandateMachine.transitions));
      expect(choicesOf('charges list', '--state')).toEqual([
        ...Object.keys(chargeMachine.transitions),
        'dunning',
      ]);
    });

    it('a process given a bad enum exits 2 naming the flag, before opening anything', async () => {
      const r = await runCli(['mandates', 'list', '--intent', 'bogus'], {});
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain("option '--intent <intent>' argument 'bogus' is invalid");
    });
  });

  it('every command, option and argument has help, worded alike', () => {
    const problems: string[] = [];
    for (const { path, command } of commands(buildProgram())) {
      const d = command.description();
      if (!/^[A-Z]/.test(d) || d.endsWith('.')) problems.push(`${path}: ${JSON.stringify(d)}`);
      for (const o of command.options)
        if (!o.hidden && (!o.description || o.description.endsWith('.'))) problems.push(`${path} ${o.flags}`);
      for (const a of command.registeredArguments) if (!a.description) problems.push(`${path} <${a.name()}>`);
    }
    expect(problems).toEqual([]);
    const help = (path: string) =>
      commands(buildProgram())
        .find((c) => c.path === path)!
        .command.description();
    expect(help('daemon')).toContain('console (/ui)');
    expect(help('admin')).toContain('console (/ui)');
    expect(help('sandbox')).toMatch(/Worldpay and Liquido/);
  });

  it('human output gives instants to the second; --json keeps them whole', () => {
    expect(table(['due'], [['2026-12-01T09:00:00.123Z']])).toContain('2026-12-01T09:00:00Z');
    const report = formatRunReport({
      runId: 7,
      asOf: '2026-12-01T09:00:00.000Z',
      dryRun: true,
      status: 'completed',
      counts: zero(),
      errors: [],
      refusals: [],
      durationMs: 12,
      recorded: true,
      forecast: [
        {
          mandateId: 1,
          customerRef: 'cust-1',
          cycle: 0,
          amount: 2999,
          currency: 'GBP',
          dueAt: '2026-12-01T08:00:00.000Z',
          kind: 'new cycle',
        },
      ],
    });
    expect(report).toContain('run 7 at 2026-12-01T09:00:00Z');
    expect(report).toMatch(/1\s+0\s+29\.99 GBP\s+2026-12-01T08:00:00Z\s+new cycle/);
    expect(report).not.toMatch(/\.\d{3}Z/);
  });

  it('logs on a terminal only from warn up, unless --verbose, REBILL_LOG_LEVEL or a server asks', () => {
    const base = { configured: 'info', explicit: false, verbose: false, terminal: true, serving: false };
    expect(cliLogLevel(base)).toBe('warn');
    expect(cliLogLevel({ ...base, configured: 'error' })).toBe('error');
    expect(cliLogLevel({ ...base, verbose: true })).toBe('info');
    expect(cliLogLevel({ ...base, explicit: true, configured: 'debug' })).toBe('debug');
    expect(cliLogLevel({ ...base, serving: true })).toBe('info');
    expect(cliLogLevel({ ...base, terminal: false })).toBe('info');
  });

  describe('a closed pipe', () => {
    let w: World;
    let env: Record<string, string>;
    let dir: string | undefined;
    beforeAll(async () => {
      w = await startWorld();
      env = { ...w.env, PATH: process.env.PATH ?? '' };
      if (!w.t.url) {
        dir = mkdtempSync(join(tmpdir(), 'rebill-pipe-'));
        env.REBILL_DATA_DIR = dir;
      }
    });
    afterAll(async () => {
      await w?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('`rebill ... | true` ends quietly, exit 0, no EPIPE stack', { timeout: 120_000 }, async () => {
      // `true` has exited long before rebill writes: every write meets a closed pipe
      for (const args of ['runs list', 'mandates list --help']) {
        const child = spawn(
          'bash',
          ['-c', `${process.execPath} ${rebillBin} ${args} | true; echo "exit \${PIPESTATUS[0]}" >&2`],
          { env, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let stderr = '';
        child.stderr.on('data', (b: Buffer) => (stderr += b));
        await new Promise((resolve) => child.once('exit', resolve));
        expect(stderr, args).toBe('exit 0\n');
      }
    });
  });
});
