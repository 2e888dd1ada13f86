import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { rebillBin } from '../support/cli.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * What a terminal shows for a byte stream: `\r`, cursor-to-column (ESC[nG) and the two
 * erase-in-line sequences move and clear within the line; other escapes (cursor hiding) are
 * dropped. Enough of a terminal to see whether two writers shared a line.
 */
function screen(raw: string): string[] {
  const lines: string[] = [];
  let line: string[] = [];
  let col = 0;
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (ch === '\n') {
      lines.push(line.join('').trimEnd());
      line = [];
      col = 0;
    } else if (ch === '\r') col = 0;
    else if (ch === '\x1b') {
      // the CSI sequence after the ESC
      const m = /^\[(\??)(\d*)([A-Za-z])/.exec(raw.slice(i + 1));
      if (!m) continue;
      i += m[0].length;
      const n = Number(m[2] || '0');
      if (m[3] === 'G') col = Math.max(0, (n || 1) - 1);
      else if (m[3] === 'K' && n === 2) line = [];
      else if (m[3] === 'K') line = line.slice(0, col);
    } else {
      line[col] = ch;
      col++;
    }
  }
  if (line.length > 0) lines.push(line.join('').trimEnd());
  return lines;
}

describe.skipIf(!hasServer)('the CLI on a terminal', () => {
  let w: World;
  const t0 = new Date('2027-03-01T09:00:00Z');
  beforeAll(async () => {
    w = await startWorld({ sandbox: { latencyMs: 25 } });
    const app = await w.app(t0);
    for (let i = 0; i < 40; i++) {
      const v = await w.verify();
      // every fourth is refused: each refusal is an info log line in the middle of the run
      if (i % 4 === 0)
        w.sandbox.script({ match: { chainId: v.chainId }, outcomes: [{ type: 'refuse', code: '51' }] });
      await createMandate(app, {
        customerRef: `tty-${i}`,
        intent: 'subscription',
        amount: 1000 + i,
        currency: 'GBP',
        narrative: 'Terminal',
        interval: '1 month',
        start: t0,
        credential: { link: v.href },
      });
    }
  });
  afterAll(async () => w?.close());
  if (!hasServer) it.skip(serverSkipReason, () => {});

  it('draws the bar from a total counted first, and never puts a log line on its line', async () => {
    const at = new Date(t0.getTime() + 3_600_000).toISOString();
    // `script` gives the child a pseudo-terminal, so stderr.isTTY is true as for a person
    const command = `${process.execPath} ${rebillBin} run --as-of ${at}`;
    const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], {
      env: {
        PATH: process.env.PATH ?? '',
        ...w.env,
        REBILL_LOG_LEVEL: 'info',
        REBILL_CONCURRENCY: '2',
        COLUMNS: '120',
      },
    });
    let raw = '';
    child.stdout.on('data', (d: Buffer) => {
      raw += d.toString('utf8');
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, raw).toBe(0);

    // the bar's total is the 40 due charges from its first drawing on, and it only goes up
    const drawn = [...raw.matchAll(/charging \[[^\]]*\] (\d+)\/(\d+) (\d+)%/g)].map((m) => ({
      value: Number(m[1]),
      total: Number(m[2]),
      percent: Number(m[3]),
    }));
    expect(drawn.length).toBeGreaterThan(1);
    expect(new Set(drawn.map((d) => d.total))).toEqual(new Set([40]));
    for (let i = 1; i < drawn.length; i++)
      expect(drawn[i]!.percent).toBeGreaterThanOrEqual(drawn[i - 1]!.percent);
    expect(drawn.at(-1)).toMatchObject({ value: 40, percent: 100 });

    const lines = screen(raw);
    const logs = lines.filter((l) => l.includes('"level"'));
    // ten refusals, and the run's own lines, all printed whole
    expect(logs.filter((l) => l.includes('"decision":"retry"'))).toHaveLength(10);
    for (const l of logs) {
      expect(l.startsWith('{'), l).toBe(true);
      expect(() => JSON.parse(l), l).not.toThrow();
    }
    expect(lines.filter((l) => l.includes('charging [') && l.includes('"level"'))).toEqual([]);
    // the bar's last state stays on a line of its own, and the report's table starts on the next
    const bar = lines.findIndex((l) => /^charging \[.*\] 40\/40 100%/.test(l));
    expect(bar, JSON.stringify(lines.slice(-25), null, 1)).toBeGreaterThanOrEqual(0);
    expect(lines[bar + 1]).toMatch(/^run \d+ at /);
  });
});
