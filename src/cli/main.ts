import { Command, CommanderError } from 'commander';
import { openApp, openDatabase } from '../app.ts';
import type { FaultPoint } from '../billing/context.ts';
import { fixedClock } from '../clock.ts';
import { type Config, loadConfig } from '../config.ts';
import { migrate } from '../db/migrate.ts';
import { errorMessage } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { registerSandboxCommand } from '../sandbox/cli.ts';
import { registerChargeCommands } from './charges.ts';
import { registerDaemonCommands } from './daemon.ts';
import type { CliDeps } from './deps.ts';
import { registerEventCommands } from './events.ts';
import { registerExportCommand } from './export.ts';
import { registerForecastCommand } from './forecast.ts';
import { registerLegacyCommands } from './legacy.ts';
import { registerMandateCommands } from './mandates.ts';
import { exitCodeFor } from './output.ts';
import { registerPaymentCommands } from './payments.ts';
import { registerPaypalCommands } from './paypal.ts';
import { registerReconcileCommand } from './reconcile.ts';
import { registerReportCommands } from './report.ts';
import { registerRunCommand } from './run.ts';
import { registerRunsCommands } from './runs.ts';
import { logDestination } from './terminal.ts';

/**
 * A crash switch for the crash-recovery tests and the soak: REBILL_CRASH_AT=<fault point>
 * makes the process SIGKILL itself the first time it reaches that point. Never set it in
 * production.
 */
function crashSwitch() {
  const at = process.env.REBILL_CRASH_AT as FaultPoint | undefined;
  if (!at) return undefined;
  return {
    hit(point: FaultPoint) {
      if (point === at) process.kill(process.pid, 'SIGKILL');
    },
  };
}

export function buildProgram(): Command {
  let config: Config | undefined;
  const getConfig = () => {
    config ??= loadConfig();
    return config;
  };
  const deps: CliDeps = {
    config: getConfig,
    async withApp(fn, opts = {}) {
      const app = await openApp(getConfig(), {
        ...(opts.asOf ? { clock: fixedClock(opts.asOf) } : {}),
        // On a terminal, log lines and the progress bar share stderr without sharing a line.
        ...(process.stderr.isTTY
          ? { logger: createLogger({ level: getConfig().logLevel, destination: logDestination }) }
          : {}),
        faults: crashSwitch(),
      });
      try {
        return await fn(app);
      } finally {
        await app.close();
      }
    },
  };
  const program = new Command('rebill')
    .description(
      'Recurring billing on Access Worldpay: exactly-once charges, link chains, scheme-aware dunning',
    )
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();

  registerRunCommand(program, deps);
  registerRunsCommands(program, deps);
  registerReconcileCommand(program, deps);
  registerMandateCommands(program, deps);
  registerChargeCommands(program, deps);
  registerPaymentCommands(program, deps);
  registerPaypalCommands(program, deps);
  registerDaemonCommands(program, deps);
  registerEventCommands(program, deps);
  registerForecastCommand(program, deps);
  registerReportCommands(program, deps);
  registerExportCommand(program, deps);
  registerLegacyCommands(program, {
    openDatabase: () => openDatabase(getConfig()),
    config: getConfig,
  });
  registerSandboxCommand(program);

  program
    .command('demo')
    .description('A billing story end to end on an embedded database and the built-in sandbox')
    .action(async () => {
      const { runDemo } = await import('../demo.ts');
      await runDemo();
    });

  const db = program.command('db').description('Database maintenance');
  db.command('migrate')
    .description('Apply pending migrations (also done at every start)')
    .action(async () => {
      const database = await openDatabase(getConfig());
      await migrate(database);
      await database.close();
      process.stdout.write('database is up to date\n');
    });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    // Database errors arrive wrapped (drizzle's "Failed query"): errorMessage keeps the cause
    // and drops the parameters; anything else keeps a cause that says more.
    const message = errorMessage(err);
    const cause =
      err instanceof Error && err.cause instanceof Error && !message.startsWith('database error')
        ? `: ${err.cause.message.split('\n')[0]}`
        : '';
    process.stderr.write(`rebill: ${message}${cause}\n`);
    process.exitCode = exitCodeFor(err);
  }
}
