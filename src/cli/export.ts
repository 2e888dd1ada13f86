import { createWriteStream } from 'node:fs';
import { Argument, type Command, type CommandOptions, Option } from 'commander';
import { EXPORT_KINDS, exportCount, exportLines } from '../billing/reporting/exports.ts';
import type { CliDeps } from './deps.ts';
import { parseInstant } from './output.ts';
import { progressBar } from './terminal.ts';
import { renamedCommand } from './vocabulary.ts';

export function registerExportCommand(program: Command, deps: CliDeps): void {
  // `exports` as the API's /v1/exports/{kind}; `export` was its spelling before one vocabulary.
  renamedCommand('export', 'exports', (name, options) => exportCommand(program, name, options, deps));
}

function exportCommand(program: Command, name: string, options: CommandOptions, deps: CliDeps): Command {
  return program
    .command(name, options)
    .description(
      'Charges, mandates, attempts or events in a window as CSV or NDJSON, streamed (no card data)',
    )
    .addArgument(new Argument('<kind>', 'what to export').choices([...EXPORT_KINDS]))
    .requiredOption('--from <iso>', 'window start (inclusive)')
    .requiredOption('--to <iso>', 'window end (exclusive)')
    .addOption(new Option('--format <format>', 'csv or ndjson').choices(['csv', 'ndjson']).default('csv'))
    .option('--out <file>', 'write here instead of standard output')
    .action(async (kind: string, o) => {
      const from = parseInstant('--from', o.from);
      const to = parseInstant('--to', o.to);
      if (to.getTime() <= from.getTime()) throw new Error('--to: must be after --from');
      await deps.withApp(async (app) => {
        const file = o.out ? createWriteStream(o.out) : undefined;
        const out: NodeJS.WritableStream = file ?? process.stdout;
        // The bar shares the terminal with nothing: on when the data goes to a file or a pipe.
        const bar = progressBar('exporting', Boolean(o.out) || !process.stdout.isTTY);
        if (process.stderr.isTTY) bar.total(await exportCount(app.database, kind, { from, to }));
        let rows = 0;
        try {
          for await (const chunk of exportLines(app.database, kind, {
            from,
            to,
            format: o.format,
            onRows: (n) => {
              rows = n;
              bar.update(n);
            },
          }))
            if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
        } finally {
          bar.stop();
        }
        if (file) {
          await new Promise<void>((resolve, reject) => {
            file.on('error', reject);
            file.end(() => resolve());
          });
          process.stderr.write(`wrote ${rows} ${kind} to ${o.out}\n`);
        }
      });
    });
}
