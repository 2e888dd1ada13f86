/**
 * Streaming readers for legacy files. Each yields `{ line, record }` one record at a time, so a
 * file of a million rows is never held in memory. `line` is the 1-based line the record starts
 * on (a quoted CSV field may span lines). A record the parser cannot make sense of comes out
 * with `error` set, so it is rejected with its line rather than failing the whole import.
 */

import { createReadStream } from 'node:fs';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import { type Readable, Transform } from 'node:stream';
import { parse } from 'csv-parse';
import { containsCardNumber } from '../domain/card.ts';
import { InvalidRequestError } from '../errors.ts';
import { FIELDS, REQUIRED_COLUMNS } from './rows.ts';

export type LegacyFormat = 'csv' | 'ndjson';

export interface SourceRecord {
  line: number;
  record: unknown;
  /** Set when the record could not be parsed; `record` is then empty. */
  error?: string;
}

/** A problem with the file as a whole (unknown format, bad header): nothing is imported. */
export class LegacyFileError extends InvalidRequestError {
  static override readonly type: string = 'LegacyFileError';
}

export function detectFormat(path: string, format?: string): LegacyFormat {
  const f = (format ?? extname(path).slice(1)).toLowerCase();
  if (f === 'csv') return 'csv';
  if (f === 'ndjson' || f === 'jsonl') return 'ndjson';
  throw new LegacyFileError(
    format
      ? `unknown format ${JSON.stringify(format)}: use csv or ndjson`
      : 'cannot tell the format from the file name: pass --format csv|ndjson',
  );
}

export function readLegacyFile(path: string, format?: string): AsyncIterable<SourceRecord> {
  const kind = detectFormat(path, format);
  const stream = createReadStream(path);
  return kind === 'csv' ? readCsv(stream) : readNdjson(stream);
}

/**
 * csv-parse miscounts lines on CRLF files (a CRLF inside a quoted field counts twice), so
 * line ends are made LF before parsing. A CR ending a chunk waits for the next one.
 */
function crlfToLf(): Transform {
  let pendingCr = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      let s = (pendingCr ? '\r' : '') + chunk.toString('latin1');
      pendingCr = s.endsWith('\r');
      if (pendingCr) s = s.slice(0, -1);
      done(null, Buffer.from(s.replace(/\r\n/g, '\n'), 'latin1'));
    },
    flush(done) {
      done(null, pendingCr ? Buffer.from('\r', 'latin1') : undefined);
    },
  });
}

const CSV_REASONS: Record<string, string> = {
  CSV_RECORD_INCONSISTENT_FIELDS_LENGTH: 'the record has a different number of fields than the header',
  CSV_RECORD_INCONSISTENT_COLUMNS: 'the record has a different number of fields than the header',
  CSV_QUOTE_NOT_CLOSED: 'a quoted field is not closed',
  CSV_INVALID_CLOSING_QUOTE: 'a closing quote is followed by other characters',
  CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE: 'a closing quote is followed by other characters',
};

function checkHeader(header: string[]): string[] {
  const names = header.map((h) => h.trim());
  const known = new Set<string>(FIELDS);
  // Named by position; a name is repeated only when it cannot be a card number (a file without
  // its header row has data in the first line, and data must not come back out in an error).
  const unknown = names.flatMap((n, i) =>
    known.has(n) ? [] : [`${i + 1} (${containsCardNumber(n) ? 'looks like data, not a column name' : n})`],
  );
  if (unknown.length > 0)
    throw new LegacyFileError(
      `unknown column(s) in the header at position(s) ${unknown.join(', ')}; is the header row missing?`,
    );
  const missing = REQUIRED_COLUMNS.filter((c) => !names.includes(c));
  if (missing.length > 0) throw new LegacyFileError(`missing column(s) in the header: ${missing.join(', ')}`);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new LegacyFileError(`column ${dup} appears twice in the header`);
  return names;
}

/** The line a record starts on, from the line csv-parse ended it on and its raw text. */
function startLine(endLine: number, raw: string): number {
  const body = raw.replace(/^\n+/, '').replace(/\n$/, '');
  let inner = 0;
  for (let i = 0; i < body.length; i++) if (body.charCodeAt(i) === 10) inner++;
  return endLine - inner;
}

export async function* readCsv(input: Readable): AsyncGenerator<SourceRecord> {
  const skipped: SourceRecord[] = [];
  const parser = input.pipe(crlfToLf()).pipe(
    parse({
      bom: true,
      columns: checkHeader,
      info: true,
      raw: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      on_skip: (err, raw) => {
        const code = (err as { code?: string } | undefined)?.code ?? 'CSV_ERROR';
        const lines = (err as { lines?: number } | undefined)?.lines ?? 0;
        skipped.push({
          line: startLine(lines, raw ?? ''),
          record: {},
          error: CSV_REASONS[code] ?? `the record is not valid CSV (${code})`,
        });
      },
    }),
  );
  input.on('error', (err) => parser.destroy(err));
  for await (const item of parser as AsyncIterable<{
    record: Record<string, string>;
    info: { lines: number };
    raw: string;
  }>) {
    // on_skip runs as the parser reaches a record, possibly before records it parsed earlier
    // have been read from the stream: merge by line so the order is the file's.
    const line = startLine(item.info.lines, item.raw);
    while (skipped.length > 0 && skipped[0]!.line < line) yield skipped.shift()!;
    yield { line, record: item.record };
  }
  while (skipped.length > 0) yield skipped.shift()!;
}

export async function* readNdjson(input: Readable): AsyncGenerator<SourceRecord> {
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  for await (const input of lines) {
    line++;
    const text = line === 1 ? input.replace(/^\uFEFF/, '') : input;
    if (text.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch {
      yield { line, record: {}, error: 'not valid JSON' };
      continue;
    }
    yield { line, record };
  }
}
