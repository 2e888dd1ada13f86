import type { Command } from 'commander';
import { serve } from '../daemon/serve.ts';
import type { CliDeps } from './main.ts';

export function registerDaemonCommands(program: Command, deps: CliDeps): void {
  program
    .command('daemon')
    .description(
      'Bill on a schedule (REBILL_CRON) and serve the admin API, webhook and metrics on REBILL_ADMIN_ADDR; safe as several replicas',
    )
    .action(async () => {
      await deps.withApp((app) => serve(app, { schedule: true }));
      process.exitCode = 0;
      exitSoon();
    });
  program
    .command('admin')
    .description('Serve the admin API, webhook and metrics only (no schedule)')
    .action(async () => {
      await deps.withApp((app) => serve(app, { schedule: false }));
      process.exitCode = 0;
      exitSoon();
    });
}

/** Everything is closed; if a stray handle (a keep-alive socket) holds the loop, do not hang. */
function exitSoon(): void {
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
}
