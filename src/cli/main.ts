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
import { registerDisputeCommands } from './disputes.ts';
import { registerEventCommands } from './events.ts';
import { registerExportCommand } from './export.ts';
import { registerForecastCommand } from './forecast.ts';
import { registerLegacyCommands } from './legacy.ts';
import { registerMandateCommands } from './mandates.ts';
import { exitCodeFor, humanTimes } from './output.ts';
import { registerPaymentCommands } from './payments.ts';
import { registerPaypalCommands } from './paypal.ts';
import { registerReconcileCommand } from './reconcile.ts';
import { registerReportCommands } from './report.ts';
import { registerRunCommand } from './run.ts';
import { registerRunsCommands } from './runs.ts';
import { cliLogLevel, endQuietlyOnClosedPipe, isClosedPipe, logDestination } from './terminal.ts';

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
      const level = cliLogLevel({
        configured: getConfig().logLevel,
        explicit: process.env.REBILL_LOG_LEVEL !== undefined,
        verbose: program.opts().verbose === true,
        terminal: Boolean(process.stdout.isTTY),
        serving: opts.serving === true,
      });
      const app = await openApp(getConfig(), {
        ...(opts.asOf ? { clock: fixedClock(opts.asOf) } : {}),
        // On a terminal, log lines and the progress bar share stderr without sharing a line.
        logger: createLogger({ level, ...(process.stderr.isTTY ? { destination: logDestination } : {}) }),
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
    .option(
      '--verbose',
      'log lines (JSON on stderr) at REBILL_LOG_LEVEL on a terminal too; without it a terminal gets warnings and errors only',
    )
    .showHelpAfterError()
    .exitOverride();

  registerRunCommand(program, deps);
  registerRunsCommands(program, deps);
  registerReconcileCommand(program, deps);
  registerMandateCommands(program, deps);
  registerChargeCommands(program, deps);
  registerDisputeCommands(program, deps);
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
  describeArguments(program);
  return program;
}

/** What a group's `<id>` names: its noun in the singular. */
const ID_OF: Record<string, string> = {
  runs: 'run',
  mandates: 'mandate',
  charges: 'charge',
  webhooks: 'webhook endpoint',
  paypal: 'PayPal payment',
  events: 'event',
};
const ARGUMENT_TEXT: Record<string, string> = {
  chargeId: "the charge's id",
  changeId: "the scheduled change's id (see mandates changes)",
  deliveryId: "the delivery's id (see webhooks deliveries)",
  url: 'the https URL events are POSTed to',
};

/**
 * Every argument's help says what it is, in one wording: commands declare `<id>` in their name
 * (`show <id>`), which commander leaves undescribed, so the help would list no arguments.
 */
function describeArguments(command: Command, group = ''): void {
  for (const sub of command.commands) {
    for (const arg of sub.registeredArguments)
      if (!arg.description) {
        const noun = ID_OF[group];
        arg.description =
          ARGUMENT_TEXT[arg.name()] ?? (arg.name() === 'id' && noun ? `the ${noun}'s id` : '');
      }
    describeArguments(sub, sub.name());
  }
}

export async function main(argv: string[]): Promise<void> {
  endQuietlyOnClosedPipe();
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (isClosedPipe(err)) return;
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
    process.stderr.write(humanTimes(`rebill: ${message}${cause}\n`));
    process.exitCode = exitCodeFor(err);
  }
}
