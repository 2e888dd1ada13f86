import type { Command } from 'commander';
import type { CliDeps } from './deps.ts';

// The HTTP server (fastify) is loaded by the two commands that serve, not by every command.
const serve: typeof import('../daemon/serve.ts').serve = async (...args) =>
  (await import('../daemon/serve.ts')).serve(...args);

export function registerDaemonCommands(program: Command, deps: CliDeps): void {
  program
    .command('daemon')
    .description(
      'Bill on a schedule (REBILL_CRON), deliver webhooks, and serve the admin API, the console (/ui), the Worldpay webhook and metrics on REBILL_ADMIN_ADDR; safe as several replicas',
    )
    .action(async () => {
      await deps.withApp((app) => serve(app, { schedule: true }), { serving: true });
      process.exitCode = 0;
      exitSoon();
    });
  program
    .command('admin')
    .description(
      'Serve the admin API, the console (/ui), the Worldpay webhook and metrics on REBILL_ADMIN_ADDR, without the schedule',
    )
    .action(async () => {
      await deps.withApp((app) => serve(app, { schedule: false }), { serving: true });
      process.exitCode = 0;
      exitSoon();
    });
}

/** Everything is closed; if a stray handle (a keep-alive socket) holds the loop, do not hang. */
function exitSoon(): void {
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
}
