/**
 * Writes a legacy-import CSV of N valid rows for the import benchmark:
 *   node --import tsx bench/gen-legacy.ts 1000000 /tmp/legacy-1m.csv
 * A mix of every instrument type and intent; about one customer in three has two mandates on
 * one card (one shared credential). Deterministic (seeded), so runs compare.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { FIELDS } from '../src/legacy/rows.ts';
import { rng } from './lib/rng.ts';

function withLuhn(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let d = body.charCodeAt(body.length - 1 - i) - 48;
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return body + String((10 - (sum % 10)) % 10);
}

export async function generateLegacyCsv(rows: number, path: string, seed = 1): Promise<void> {
  const random = rng(seed);
  const digits = (n: number) => Array.from({ length: n }, () => Math.floor(random() * 10)).join('');
  const out = createWriteStream(path);
  const write = async (line: string) => {
    if (!out.write(line)) await once(out, 'drain');
  };
  await write(`${FIELDS.join(',')}\n`);
  let customer = 0;
  let card = '';
  for (let i = 0; i < rows; i++) {
    // Every third row reuses the previous row's customer and card.
    const shared = i % 3 === 1;
    if (!shared) {
      customer++;
      card = withLuhn(`${['4', '51', '2221', '37'][i % 4]}${digits(14)}`.slice(0, 15));
    }
    const kind = shared ? 0 : i % 5;
    const type = kind === 3 ? 'card/token' : kind === 4 ? 'card/networkToken+applepay' : 'card/plain';
    const intent = i % 7 === 0 ? 'unscheduled' : i % 7 === 1 ? 'instalment' : 'subscription';
    const day = String(1 + (i % 28)).padStart(2, '0');
    const row: Record<string, string> = {
      legacy_id: `L${i}`,
      customer_ref: `C${customer}`,
      intent,
      amount: String(100 + (i % 10_000)),
      currency: ['GBP', 'EUR', 'USD', 'JPY'][i % 4]!,
      interval: intent === 'unscheduled' ? '' : ['1 month', '1 year', '2 weeks'][i % 3]!,
      next_charge_at: intent === 'unscheduled' ? '' : `2027-0${1 + (i % 9)}-${day}`,
      timezone: ['Europe/London', 'America/New_York', 'Asia/Tokyo', 'UTC'][i % 4]!,
      instalments_total: intent === 'instalment' ? '12' : '',
      instalments_paid: intent === 'instalment' ? String(i % 12) : '',
      entity: 'MindPalaceLtd',
      narrative: 'Mind Palace Ltd',
      instrument_type: type,
      card_number: type === 'card/plain' ? card : '',
      expiry_month: type === 'card/token' ? '' : String(1 + (i % 12)),
      expiry_year: type === 'card/token' ? '' : String(2028 + (i % 5)),
      card_holder_name: `Holder ${customer}`,
      token_href: type === 'card/token' ? `https://try.access.worldpay.com/tokens/T${i}` : '',
      dpan: type === 'card/networkToken+applepay' ? card : '',
      scheme_reference: i % 2 === 0 ? `SR${i}` : '',
    };
    await write(`${FIELDS.map((f) => row[f] ?? '').join(',')}\n`);
  }
  out.end();
  await once(out, 'finish');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [n, path] = process.argv.slice(2);
  if (!n || !path || !/^\d+$/.test(n)) {
    process.stderr.write('usage: node --import tsx bench/gen-legacy.ts ROWS FILE.csv\n');
    process.exit(1);
  }
  await generateLegacyCsv(Number(n), path);
}
