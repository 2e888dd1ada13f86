/**
 * `rebill legacy ...`: import legacy mandates, show how much card data is left, rotate the
 * encryption key. Parsing and printing only; the work lives in src/legacy.
 * Exit codes: 0 everything imported or unchanged, 2 some rows rejected or changed, 1 fatal.
 */
import { createReadStream, readFileSync, statSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { type Command, Option } from 'commander';
import { WORLDPAY_APIS } from '../billing/mandates/schemas.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import { keyId, parseKey } from '../domain/card-crypto.ts';
import { legacyStatus } from '../legacy/erase.ts';
import { type ImportReport, importLegacy } from '../legacy/import.ts';
import { detectFormat, readCsv, readNdjson } from '../legacy/reader.ts';
import { rotateKeys } from '../legacy/rotate-key.ts';
import type { LegacyApi } from '../legacy/rows.ts';
import { intOption } from './output.ts';

export interface LegacyDeps {
  openDatabase: () => Promise<Database>;
  config: () => Config;
  /** Output streams, replaceable in tests. */
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream & { isTTY?: boolean };
  now?: () => Date;
}

const SHOWN = 20;

function fatal(deps: LegacyDeps, command: string, err: unknown): void {
  // drizzle's query errors carry the whole statement and its parameters: show the cause.
  const cause = err instanceof Error ? err.cause : undefined;
  const message =
    err instanceof Error
      ? err.message.startsWith('Failed query') && cause instanceof Error
        ? cause.message
        : err.message
      : String(err);
  (deps.stderr ?? process.stderr).write(`rebill legacy ${command}: ${message}\n`);
  process.exitCode = 1;
}

function table(rows: [string, string | number][]): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n';
}

function summary(report: ImportReport): string {
  let out = table([
    ['read', report.read],
    [report.dryRun ? 'would import' : 'imported', report.imported],
    ['unchanged', report.unchanged],
    ['changed (not applied)', report.changed.length],
    ['rejected rows', report.rejectedRows],
  ]);
  if (report.rejected.length > 0) {
    out += '\nrejected:\n';
    for (const r of report.rejected.slice(0, SHOWN)) out += `  line ${r.line}  ${r.field}: ${r.reason}\n`;
    if (report.rejected.length > SHOWN)
      out += `  ... ${report.rejected.length - SHOWN} more (use --json for all)\n`;
  }
  if (report.changed.length > 0) {
    out += '\nchanged since the last import (not applied):\n';
    for (const c of report.changed.slice(0, SHOWN)) out += `  line ${c.line}  ${c.legacyId}\n`;
    if (report.changed.length > SHOWN)
      out += `  ... ${report.changed.length - SHOWN} more (use --json for all)\n`;
  }
  if (report.dryRun) out += '\ndry run: nothing was written\n';
  return out;
}

export function registerLegacyCommands(program: Command, deps: LegacyDeps): Command {
  const out = () => deps.stdout ?? process.stdout;
  const err = () => deps.stderr ?? process.stderr;
  const legacy = program.command('legacy').description('Import and manage legacy card-on-file mandates');

  legacy
    .command('import')
    .description('Validate and import a CSV or NDJSON file of legacy mandates')
    .argument('<file>', 'CSV with a header row, or NDJSON with the same field names')
    .addOption(
      new Option('--format <format>', 'the file format (default: from the file extension)').choices([
        'csv',
        'ndjson',
      ]),
    )
    .addOption(
      new Option(
        '--api <version>',
        "Worldpay's card API the credentials are charged through: v6 (migrateRecurring, then a link chain; card data erased after the first charge) or v7 (card/plain, card/token, card/networkToken with scheme_reference; card data kept)",
      )
        .choices(WORLDPAY_APIS)
        .default('v6'),
    )
    .option('--dry-run', 'validate and report without writing', false)
    .option('--json', 'print the report as JSON, with every rejection', false)
    .option(
      '--batch-size <n>',
      'rows per transaction',
      intOption('--batch-size', { min: 1, max: 10_000, what: 'an integer from 1 to 10000' }),
      1000,
    )
    .action(
      async (
        file: string,
        o: { format?: string; api: LegacyApi; dryRun: boolean; json: boolean; batchSize: number },
      ) => {
        let database: Database | undefined;
        let bar: cliProgress.SingleBar | undefined;
        try {
          const config = deps.config();
          const format = detectFormat(file, o.format);
          const size = statSync(file).size;
          if (!config.encryptionKey) {
            err().write(
              'warning: REBILL_ENCRYPTION_KEY is not set: rows with a card number or DPAN will be rejected\n',
            );
          }
          database = await deps.openDatabase();
          const stream = createReadStream(file);
          let bytes = 0;
          const stderr = err();
          if (stderr.isTTY && !o.json) {
            bar = new cliProgress.SingleBar(
              { stream: stderr, format: 'importing [{bar}] {percentage}% | {rows} rows', hideCursor: true },
              cliProgress.Presets.shades_classic,
            );
            bar.start(size, 0, { rows: 0 });
          }
          stream.on('data', (chunk) => {
            bytes += chunk.length;
          });
          const source = format === 'csv' ? readCsv(stream) : readNdjson(stream);
          const report = await importLegacy(database, source, {
            key: config.encryptionKey,
            maxAmountMajor: config.billing.maxAmount,
            dryRun: o.dryRun,
            api: o.api,
            now: deps.now?.() ?? new Date(),
            batchSize: o.batchSize,
            onProgress: bar ? (rows) => rows % 1000 === 0 && bar!.update(bytes, { rows }) : undefined,
          });
          bar?.update(size, { rows: report.read });
          bar?.stop();
          bar = undefined;
          out().write(o.json ? `${JSON.stringify(report, null, 2)}\n` : summary(report));
          process.exitCode = report.rejectedRows > 0 || report.changed.length > 0 ? 2 : 0;
        } catch (e) {
          bar?.stop();
          fatal(deps, 'import', e);
        } finally {
          await database?.close();
        }
      },
    );

  legacy
    .command('status')
    .description('How many legacy mandates still hold card data, and how many are migrated')
    .option('--json', 'print JSON', false)
    .action(async (o: { json: boolean }) => {
      let database: Database | undefined;
      try {
        database = await deps.openDatabase();
        const status = await legacyStatus(database);
        out().write(
          o.json
            ? `${JSON.stringify(status)}\n`
            : table([
                ['legacy mandates', status.mandates],
                ['holding card data', status.withCardData],
                ['migrated', status.migrated],
              ]),
        );
      } catch (e) {
        fatal(deps, 'status', e);
      } finally {
        await database?.close();
      }
    });

  legacy
    .command('rotate-key')
    .description('Re-encrypt stored card numbers under a new key (then set REBILL_ENCRYPTION_KEY to it)')
    .requiredOption(
      '--new-key-file <file>',
      'file holding the new key: 64 hex characters or base64 of 32 bytes',
    )
    .option('--json', 'print JSON', false)
    .action(async (o: { newKeyFile: string; json: boolean }) => {
      let database: Database | undefined;
      try {
        const oldKey = deps.config().encryptionKey;
        if (!oldKey) throw new Error('REBILL_ENCRYPTION_KEY (the current key) is not set');
        const newKey = parseKey(readFileSync(o.newKeyFile, 'utf8'));
        if (keyId(newKey) === keyId(oldKey)) throw new Error('the new key is the current key');
        database = await deps.openDatabase();
        const result = await rotateKeys(database, oldKey, newKey);
        const report = { ...result, keyId: keyId(newKey) };
        out().write(
          o.json
            ? `${JSON.stringify(report)}\n`
            : table([
                ['re-encrypted', result.reencrypted],
                ['already under the new key', result.alreadyNew],
                ['new key id', report.keyId],
              ]) + 'now set REBILL_ENCRYPTION_KEY (or _FILE) to the new key\n',
        );
      } catch (e) {
        fatal(deps, 'rotate-key', e);
      } finally {
        await database?.close();
      }
    });
  return legacy;
}
