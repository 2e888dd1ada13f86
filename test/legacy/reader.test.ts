import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  detectFormat,
  LegacyFileError,
  readCsv,
  readNdjson,
  type SourceRecord,
} from '../../src/legacy/reader.ts';

async function collect(source: AsyncIterable<SourceRecord>): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const r of source) out.push(r);
  return out;
}

/** Split into small chunks so records and CRLFs straddle chunk boundaries. */
const chunked = (text: string, size = 5) =>
  Readable.from(
    Array.from({ length: Math.ceil(text.length / size) }, (_, i) => text.slice(i * size, i * size + size)),
  );

const HEADER =
  'legacy_id,customer_ref,intent,amount,currency,entity,narrative,instrument_type,card_holder_name';

describe('legacy file readers', () => {
  it.each([
    ['LF', '\n'],
    ['CRLF', '\r\n'],
  ])('CSV (%s): each record carries the line it starts on, multi-line fields included', async (_name, nl) => {
    const text = [
      HEADER,
      'a,c1,subscription,1,GBP,E,N,card/token,"first',
      'second',
      'third"',
      '',
      'b,c2,subscription,1,GBP,E,N,card/token,x',
      'c,c3,too,few',
      'd,c4,subscription,1,GBP,E,N,card/token,y',
    ].join(nl);
    const records = await collect(readCsv(chunked(`\uFEFF${text}${nl}`)));
    expect(records.map((r) => [r.line, (r.record as { legacy_id?: string }).legacy_id ?? r.error])).toEqual([
      [2, 'a'],
      [6, 'b'],
      [7, 'the record has a different number of fields than the header'],
      [8, 'd'],
    ]);
    // Line ends are normalised to LF, inside quoted fields too.
    expect((records[0]!.record as Record<string, string>).card_holder_name).toBe('first\nsecond\nthird');
  });

  it('CSV: an unknown or missing header column fails the whole file', async () => {
    await expect(collect(readCsv(Readable.from([`${HEADER},card_numbr\n`])))).rejects.toThrow(
      /unknown column\(s\) in the header at position\(s\) 10 \(card_numbr\)/,
    );
    // A file without its header row: the first data line is read as the header. Its cells are
    // named by position, and a card number among them is never repeated.
    const headerless = collect(
      readCsv(
        Readable.from([
          'L-1,cust-1,subscription,1000,GBP,1 month,2026-12-01,,,,,x,card/plain,4929301661318602\n',
        ]),
      ),
    );
    await expect(headerless).rejects.toThrow(
      /position\(s\) 1 \(L-1\).*14 \(looks like data, not a column name\)/,
    );
    await expect(headerless).rejects.not.toThrow(/4929301661318602/);
    await expect(collect(readCsv(Readable.from(['legacy_id,customer_ref\nx,y\n'])))).rejects.toThrow(
      LegacyFileError,
    );
  });

  it('NDJSON: line numbers count blank lines; bad JSON is a record error', async () => {
    const records = await collect(
      readNdjson(chunked('\uFEFF{"legacy_id":"a"}\r\n\n{oops\n{"legacy_id":"b"}')),
    );
    expect(records).toEqual([
      { line: 1, record: { legacy_id: 'a' } },
      { line: 3, record: {}, error: 'not valid JSON' },
      { line: 4, record: { legacy_id: 'b' } },
    ]);
  });

  it('detects the format from --format or the extension', () => {
    expect(detectFormat('x.CSV')).toBe('csv');
    expect(detectFormat('x.jsonl')).toBe('ndjson');
    expect(detectFormat('x.txt', 'ndjson')).toBe('ndjson');
    expect(() => detectFormat('x.txt')).toThrow(/--format/);
    expect(() => detectFormat('x.csv', 'xml')).toThrow(/unknown format/);
  });
});
