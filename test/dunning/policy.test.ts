import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ADVICE_CODES,
  type CardLedger,
  classifyRefusal,
  DAY,
  DEFAULT_DUNNING_CONFIG,
  type DecideInput,
  type DunningCategory,
  type DunningConfig,
  DunningConfigError,
  decide,
  decideBeforeSend,
  dunningConfigFrom,
  emptyLedger,
  HOUR,
  isExpired,
  loadDunningConfig,
  MINUTE,
  REFUSAL_CODES,
} from '../../src/domain/dunning/index.ts';

const NOW = new Date('2026-03-10T09:00:00.000Z');

function input(over: Partial<DecideInput> = {}): DecideInput {
  return {
    refusal: { code: '51' },
    intent: 'subscription',
    now: NOW,
    chargeId: 1001,
    firstRefusedAt: NOW,
    retriesSoFar: 0,
    ledger: emptyLedger(),
    config: DEFAULT_DUNNING_CONFIG,
    ...over,
  };
}

type Row = [category: DunningCategory, visa: 1 | 2 | 3 | 4, blocks: boolean];
const S = 'soft' as const;
const N = 'needs_new_credential' as const;
const X = 'stop' as const;

// Expected behaviour stated independently of the table, from DUNNING.md and the brief.
const EXPECTED_CODES: Record<string, Row> = {
  '1': [S, 4, false],
  '2': [S, 4, false],
  '3': [X, 2, false],
  '4': [X, 1, true],
  '5': [S, 4, false],
  '6': [N, 4, false],
  '7': [X, 1, true],
  '8': [S, 4, false],
  '10': [S, 4, false],
  '12': [X, 1, true],
  '13': [X, 4, false],
  '14': [N, 1, true],
  '15': [X, 1, true],
  '17': [X, 4, false],
  '19': [S, 2, false],
  '20': [S, 4, false],
  '25': [S, 4, false],
  '28': [S, 4, false],
  '29': [X, 4, false],
  '30': [X, 4, false],
  '33': [N, 3, false],
  '34': [X, 4, false],
  '38': [S, 4, false],
  '39': [N, 2, false],
  '41': [N, 1, true],
  '43': [N, 1, true],
  '46': [N, 1, true],
  '51': [S, 2, false],
  '52': [N, 2, false],
  '53': [N, 2, false],
  '54': [N, 3, false],
  '55': [N, 3, false],
  '56': [N, 4, false],
  '57': [X, 1, true],
  '58': [X, 4, false],
  '59': [X, 1, true],
  '61': [S, 2, false],
  '62': [S, 2, false],
  '65': [N, 2, false],
  '68': [S, 4, false],
  '80': [S, 4, false],
  '85': [S, 4, false],
  '91': [S, 2, false],
  '94': [X, 4, false],
  '96': [S, 2, false],
  '97': [X, 4, false],
};

const EXPECTED_ADVICE: Record<string, [category: DunningCategory, minWaitMs: number, blocks: boolean]> = {
  '01': [N, 0, false],
  '02': [S, 72 * HOUR, false],
  '03': [X, 0, true],
  '04': [N, 0, false],
  '21': [X, 0, true],
  '22': [X, 0, false],
  '24': [S, 1 * HOUR, false],
  '25': [S, 24 * HOUR, false],
  '26': [S, 2 * DAY, false],
  '27': [S, 4 * DAY, false],
  '28': [S, 6 * DAY, false],
  '29': [S, 8 * DAY, false],
  '30': [S, 10 * DAY, false],
  '40': [N, 0, false],
  '41': [N, 0, true],
  '43': [N, 0, false],
};

const ACTION: Record<DunningCategory, string> = {
  soft: 'retry',
  needs_new_credential: 'needs_new_credential',
  stop: 'stop',
};

describe('code table', () => {
  it('covers exactly the listed refusal codes and advice codes', () => {
    expect(Object.keys(REFUSAL_CODES).sort()).toEqual(Object.keys(EXPECTED_CODES).sort());
    expect(Object.keys(ADVICE_CODES).sort()).toEqual(Object.keys(EXPECTED_ADVICE).sort());
  });

  it.each(Object.entries(EXPECTED_CODES))('refusal code %s', (code, [category, visa, blocks]) => {
    const c = classifyRefusal(code, null);
    expect(c).toMatchObject({ category, visaCategory: visa, blocksCredential: blocks, unknownCode: false });
    const d = decide(input({ refusal: { code } }));
    expect(d.action).toBe(ACTION[category]);
    expect(d.category).toBe(category);
    expect(d.code).toBe(code);
    expect(d.blocksCredential).toBe(blocks);
    expect(d.reason.startsWith(`${code} `)).toBe(true);
    if (d.action === 'retry') {
      // First retry: 1 day after the first refusal plus at most 2 h of jitter.
      expect(d.retryAt.getTime()).toBeGreaterThanOrEqual(NOW.getTime() + DAY);
      expect(d.retryAt.getTime()).toBeLessThan(NOW.getTime() + DAY + 2 * HOUR);
      expect(d.retry).toBe(1);
      expect(d.reason).toMatch(/retry 1 of 4 at 2026-03-11T.*\(ledger 1\/15 in 30 days\)/);
    }
  });

  it('Visa category 1 codes never lead to a retry and always block the credential', () => {
    for (const [code, rule] of Object.entries(REFUSAL_CODES)) {
      if (rule.visaCategory !== 1) continue;
      const d = decide(input({ refusal: { code } }));
      expect(d.action, code).not.toBe('retry');
      expect(d.blocksCredential, code).toBe(true);
    }
  });

  it.each(Object.entries(EXPECTED_ADVICE))(
    'advice code %s on a soft 5 (do not honour)',
    (mac, [category, wait, blocks]) => {
      const d = decide(input({ refusal: { code: '5', adviceCode: mac } }));
      expect(d.category).toBe(category);
      expect(d.action).toBe(ACTION[category]);
      expect(d.adviceCode).toBe(mac);
      expect(d.blocksCredential).toBe(blocks);
      expect(d.reason).toContain(`MAC ${mac}`);
      if (d.action === 'retry') {
        expect(d.retryAt.getTime()).toBeGreaterThanOrEqual(NOW.getTime() + Math.max(wait, DAY));
        if (wait > DAY) expect(d.retryAt.getTime()).toBeLessThan(NOW.getTime() + wait + 2 * HOUR);
      }
    },
  );
});

describe('precedence: the stricter of code and advice code wins', () => {
  it('MAC 03 turns a soft 51 into a stop that blocks the card', () => {
    const d = decide(input({ refusal: { code: '51', adviceCode: '03' } }));
    expect(d).toMatchObject({ action: 'stop', category: 'stop', blocksCredential: true, visaCategory: 2 });
    expect(d.reason).toMatch(/^MAC 03 .*overrides 51 /);
  });

  it('MAC 21 stops even when the code alone is soft', () => {
    expect(decide(input({ refusal: { code: '96', adviceCode: '21' } }))).toMatchObject({
      action: 'stop',
      blocksCredential: true,
    });
  });

  it('MAC 01 on a 51 asks for new card details', () => {
    expect(decide(input({ refusal: { code: '51', adviceCode: '01' } })).action).toBe('needs_new_credential');
  });

  it('a soft advice code cannot soften a lost card or fraud', () => {
    expect(decide(input({ refusal: { code: '41', adviceCode: '24' } }))).toMatchObject({
      action: 'needs_new_credential',
      blocksCredential: true,
    });
    expect(decide(input({ refusal: { code: '34', adviceCode: '02' } })).action).toBe('stop');
  });

  it('the longer wait wins: MAC 30 on a 51 waits 10 days, MAC 02 waits 72 h, MAC 24 keeps the 1-day schedule', () => {
    const d30 = decide(input({ refusal: { code: '51', adviceCode: '30' } }));
    expect(d30.action === 'retry' && d30.retryAt.getTime() - NOW.getTime()).toBe(10 * DAY);
    const d02 = decide(input({ refusal: { code: '5', adviceCode: '02' } }));
    expect(d02.action === 'retry' && d02.retryAt.getTime()).toBeGreaterThanOrEqual(NOW.getTime() + 72 * HOUR);
    const d24 = decide(input({ refusal: { code: '51', adviceCode: '24' } }));
    expect(d24.action === 'retry' && d24.retryAt.getTime()).toBeGreaterThanOrEqual(NOW.getTime() + DAY);
  });

  it('a MAC wait counts from this refusal, not from the first one', () => {
    const first = new Date(NOW.getTime() - 4 * DAY);
    const d = decide(
      input({ refusal: { code: '51', adviceCode: '27' }, firstRefusedAt: first, retriesSoFar: 2 }),
    );
    // Slot 3 would be first + 5 d = NOW + 1 d; MAC 27 pushes it to NOW + 4 d.
    expect(d.action === 'retry' && d.retryAt.getTime()).toBe(NOW.getTime() + 4 * DAY);
  });

  it('normalises advice codes sent without padding or as numbers', () => {
    expect(classifyRefusal(51, 3)).toMatchObject({ adviceCode: '03', category: 'stop' });
    expect(classifyRefusal(' 51 ', '1')).toMatchObject({ code: '51', adviceCode: '01' });
    expect(classifyRefusal('51', '')).toMatchObject({ adviceCode: null, category: 'soft' });
  });
});

describe('unknown and raw scheme codes', () => {
  it.each(['N7', '05', 'ABCDEFGHIJ0123456789', 'refused: "weird" <x>', ''])(
    '%j falls back to soft and is flagged',
    (code) => {
      const d = decide(input({ refusal: { code } }));
      expect(d).toMatchObject({ action: 'retry', category: 'soft', unknownCode: true });
      expect(d.reason).toContain('unrecognised refusal code');
    },
  );

  it('quotes codes that are not plain text in the reason', () => {
    expect(decide(input({ refusal: { code: 'a\nb' } })).reason.startsWith('"a\\nb" ')).toBe(true);
  });

  it('an unknown advice code is ignored but flagged', () => {
    const d = decide(input({ refusal: { code: '51', adviceCode: '99' } }));
    expect(d).toMatchObject({ action: 'retry', unknownCode: true, adviceCode: '99' });
    expect(d.reason).toContain('unrecognised advice code 99');
  });

  it('does not read inherited properties as codes', () => {
    expect(classifyRefusal('constructor', '__proto__')).toMatchObject({
      category: 'soft',
      unknownCode: true,
    });
  });
});

describe('schedule, jitter, final action', () => {
  it('retries at +1d, +3d, +5d, +7d from the first refusal, each within 2 h of jitter, then fails', () => {
    const offsets = [1, 3, 5, 7];
    for (let k = 0; k < 4; k++) {
      const now = new Date(NOW.getTime() + (k === 0 ? 0 : offsets[k - 1]! * DAY + 3 * HOUR));
      const d = decide(input({ now, retriesSoFar: k }));
      if (d.action !== 'retry') throw new Error(d.reason);
      const delta = d.retryAt.getTime() - NOW.getTime() - offsets[k]! * DAY;
      expect(delta).toBeGreaterThanOrEqual(0);
      expect(delta).toBeLessThan(2 * HOUR);
      expect(d.retry).toBe(k + 1);
      expect(d.reason).toContain(`retry ${k + 1} of 4`);
    }
    expect(decide(input({ retriesSoFar: 4 }))).toMatchObject({ action: 'fail', finalAction: 'pause' });
  });

  it('jitter is reproducible per charge and spreads charges apart', () => {
    const at = (chargeId: number) => {
      const d = decide(input({ chargeId }));
      return d.action === 'retry' ? d.retryAt.getTime() : Number.NaN;
    };
    expect(at(7)).toBe(at(7));
    const spread = new Set(Array.from({ length: 50 }, (_, i) => at(i)));
    expect(spread.size).toBeGreaterThan(40);
  });

  it('never retries sooner than the minimum gap after this refusal, even when the slot has passed', () => {
    const now = new Date(NOW.getTime() + 6 * DAY); // slot 2 (+3 d) is long gone
    const d = decide(input({ now, retriesSoFar: 1 }));
    expect(d.action === 'retry' && d.retryAt.getTime()).toBeGreaterThanOrEqual(now.getTime() + DAY);
  });

  it.each([
    ['subscription', {}, 'pause'],
    ['subscription', { finalAction: { subscription: 'cancel' } }, 'cancel'],
    ['instalment', {}, 'carry_arrears'],
    ['instalment', { finalAction: { instalment: 'stop' } }, 'stop'],
    ['unscheduled', {}, 'fail'],
  ] as const)('after the last retry a %s charge fails with %j -> %s', (intent, overrides, finalAction) => {
    const config = dunningConfigFrom(overrides);
    const d = decide(input({ intent, config, retriesSoFar: 4 }));
    expect(d).toMatchObject({ action: 'fail', finalAction });
    expect(d.reason).toContain(`all 4 retries used; charge failed, ${intent} mandate: ${finalAction}`);
  });
});

describe('the card ledger gates retries', () => {
  const reattempts = (n: number, start: Date, stepMs: number) =>
    Array.from({ length: n }, (_, i) => new Date(start.getTime() + i * stepMs));

  it('moves a retry later when 15 reattempts already sit in the 30-day window', () => {
    const start = new Date(NOW.getTime() - 20 * DAY);
    const ledger: CardLedger = { reattempts: reattempts(15, start, HOUR), declines: [], blocked: null };
    const d = decide(input({ ledger, config: dunningConfigFrom({ jitter: '0s' }) }));
    if (d.action !== 'retry') throw new Error(d.reason);
    // The oldest leaves the window 30 days after it happened: NOW + 10 d.
    expect(d.retryAt.toISOString()).toBe(new Date(start.getTime() + 30 * DAY).toISOString());
    expect(d.reason).toContain('moved later by the card ledger (ledger 15/15 in 30 days)');
  });

  it('fails the charge when the ledger pushes the retry past the 30-day window', () => {
    const ledger: CardLedger = { reattempts: reattempts(15, NOW, MINUTE), declines: [], blocked: null };
    // The first refusal was an hour ago: the window closes at NOW + 30 d - 1 h, the ledger frees at NOW + 30 d.
    const d = decide(input({ ledger, firstRefusedAt: new Date(NOW.getTime() - HOUR) }));
    expect(d).toMatchObject({ action: 'fail', finalAction: 'pause' });
    expect(d.reason).toMatch(
      /card ledger allows the next reattempt only at .* after the 30-day retry window/,
    );
  });

  it('fails the charge when a MAC wait ends after the retry window', () => {
    const first = new Date(NOW.getTime() - 25 * DAY);
    const d = decide(
      input({ refusal: { code: '51', adviceCode: '30' }, firstRefusedAt: first, retriesSoFar: 3 }),
    );
    expect(d).toMatchObject({ action: 'fail', finalAction: 'pause' });
    expect(d.reason).toContain(
      'the earliest allowed retry (2026-03-20T09:00:00.000Z) is after the 30-day retry window',
    );
  });

  it('a soft decline on a blocked credential is not retried', () => {
    const ledger: CardLedger = { reattempts: [], declines: [], blocked: { reason: 'MAC 03', at: NOW } };
    expect(decide(input({ ledger }))).toMatchObject({ action: 'stop', category: 'ledger' });
    expect(decide(input({ ledger, refusal: { gatewayError: true } })).action).toBe('stop');
  });

  it('respects the declines-per-24h limit', () => {
    const declines = reattempts(10, new Date(NOW.getTime() - 23 * HOUR), MINUTE);
    const config = dunningConfigFrom({ schedule: ['30m', '2d'], minRetryGap: '10m', jitter: '0s' });
    const d = decide(input({ ledger: { reattempts: [], declines, blocked: null }, config }));
    expect(d.action === 'retry' && d.retryAt.toISOString()).toBe(
      new Date(NOW.getTime() + HOUR).toISOString(),
    );
  });
});

describe('gateway errors', () => {
  it('back off 5 min, 15 min, 1 h with small jitter and use no schedule slot', () => {
    const expected = [5 * MINUTE, 15 * MINUTE, HOUR, 4 * HOUR, 12 * HOUR, 12 * HOUR];
    expected.forEach((backoff, n) => {
      const d = decide(input({ refusal: { gatewayError: true }, gatewayErrorsSoFar: n }));
      if (d.action !== 'retry') throw new Error(d.reason);
      expect(d).toMatchObject({ category: 'gateway_error', code: null, retry: null, unknownCode: false });
      const delta = d.retryAt.getTime() - NOW.getTime() - backoff;
      expect(delta).toBeGreaterThanOrEqual(0);
      expect(delta).toBeLessThanOrEqual(backoff / 5);
    });
  });

  it('fail when the backoff would leave the retry window', () => {
    const first = new Date(NOW.getTime() - 30 * DAY + MINUTE);
    const d = decide(input({ refusal: { gatewayError: true }, firstRefusedAt: first }));
    expect(d).toMatchObject({ action: 'fail', finalAction: 'pause' });
  });
});

describe('before sending', () => {
  it('a card is valid through the end of its expiry month', () => {
    expect(isExpired(12, 2025, new Date('2025-12-31T23:59:59.999Z'))).toBe(false);
    expect(isExpired(12, 2025, new Date('2026-01-01T00:00:00.000Z'))).toBe(true);
    expect(isExpired(2, 28, new Date('2028-02-29T12:00:00Z'))).toBe(false);
    expect(isExpired(2, 28, new Date('2028-03-01T00:00:00Z'))).toBe(true);
  });

  it('does not send a known-expired card', () => {
    const d = decideBeforeSend({
      expiry: { month: 2, year: 2026 },
      now: NOW,
      kind: 'first',
      intent: 'subscription',
      ledger: emptyLedger(),
      config: DEFAULT_DUNNING_CONFIG,
    });
    expect(d).toMatchObject({ action: 'needs_new_credential' });
    expect(d.reason).toContain('02/2026');
  });

  it('sends, defers or stops by the ledger', () => {
    const base = {
      expiry: { month: 3, year: 2026 },
      now: NOW,
      kind: 'reattempt' as const,
      intent: 'instalment' as const,
      config: DEFAULT_DUNNING_CONFIG,
      firstRefusedAt: NOW,
    };
    expect(decideBeforeSend({ ...base, ledger: emptyLedger() }).action).toBe('send');
    const full: CardLedger = {
      reattempts: Array.from({ length: 15 }, (_, i) => new Date(NOW.getTime() - 29 * DAY + i * MINUTE)),
      declines: [],
      blocked: null,
    };
    expect(decideBeforeSend({ ...base, ledger: full })).toMatchObject({
      action: 'defer',
      until: new Date(NOW.getTime() + DAY),
    });
    // A first attempt is not a reattempt: the 30-day limit does not hold it back.
    expect(decideBeforeSend({ ...base, kind: 'first', ledger: full }).action).toBe('send');
    expect(
      decideBeforeSend({ ...base, ledger: { ...full, blocked: { reason: 'MAC 21', at: NOW } } }).action,
    ).toBe('stop');
    const late = { ...base, firstRefusedAt: new Date(NOW.getTime() - 29.5 * DAY) };
    expect(decideBeforeSend({ ...late, ledger: full })).toMatchObject({
      action: 'fail',
      finalAction: 'carry_arrears',
    });
  });
});

describe('policy file overrides', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rebill-dunning-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('defaults without a file', () => {
    expect(loadDunningConfig({ env: {} })).toBe(DEFAULT_DUNNING_CONFIG);
    expect(loadDunningConfig({ env: { REBILL_DUNNING_POLICY_FILE: '' } })).toBe(DEFAULT_DUNNING_CONFIG);
  });

  it('a JSON file changes a code category without a code change', () => {
    const file = write(
      'policy.json',
      JSON.stringify({ codes: { '51': { category: 'stop', reason: 'we never chase funds' } }, jitter: '0s' }),
    );
    const config = loadDunningConfig({ file });
    const d = decide(input({ config }));
    expect(d).toMatchObject({ action: 'stop', category: 'stop' });
    expect(d.reason).toContain('51 we never chase funds');
    expect(DEFAULT_DUNNING_CONFIG.codes['51']!.category).toBe('soft');
  });

  it('a YAML file named by REBILL_DUNNING_POLICY_FILE sets schedule, advice waits and raw codes', () => {
    const file = write(
      'policy.yaml',
      [
        'schedule: [2d, 4d]',
        'jitter: 0s',
        'finalAction: { subscription: cancel }',
        'codes:',
        '  N7: { category: needs_new_credential, reason: "CVV2 mismatch" }',
        'adviceCodes:',
        '  "2": { category: soft, minWait: 5d }',
      ].join('\n'),
    );
    const config = loadDunningConfig({ env: { REBILL_DUNNING_POLICY_FILE: file } });
    expect(config.scheduleMs).toEqual([2 * DAY, 4 * DAY]);
    expect(decide(input({ config, refusal: { code: 'N7' } }))).toMatchObject({
      action: 'needs_new_credential',
      unknownCode: false,
    });
    const d = decide(input({ config, refusal: { code: '51', adviceCode: '02' } }));
    expect(d.action === 'retry' && d.retryAt.getTime()).toBe(NOW.getTime() + 5 * DAY);
    expect(decide(input({ config, retriesSoFar: 2 }))).toMatchObject({
      action: 'fail',
      finalAction: 'cancel',
    });
  });

  it('softening a never-retry code keeps its credential block unless the file lifts it', () => {
    const kept = dunningConfigFrom({ codes: { '57': { category: 'soft' } } });
    expect(decide(input({ config: kept, refusal: { code: '57' } }))).toMatchObject({
      action: 'stop',
      blocksCredential: true,
    });
    const lifted = dunningConfigFrom({ codes: { '57': { category: 'soft', blocksCredential: false } } });
    expect(decide(input({ config: lifted, refusal: { code: '57' } }))).toMatchObject({
      action: 'retry',
      blocksCredential: false,
    });
  });

  it('clamps the reattempt cap to the scheme limit of 15 and says so', () => {
    const config = dunningConfigFrom({ maxReattemptsPer30Days: 20, maxDeclinesPer24h: 50 });
    expect(config.maxReattemptsPer30Days).toBe(15);
    expect(config.maxDeclinesPer24h).toBe(20);
    expect(config.warnings).toEqual([
      'maxReattemptsPer30Days 20 clamped to the scheme limit 15',
      'maxDeclinesPer24h 50 clamped to the scheme limit 20',
    ]);
    expect(dunningConfigFrom({ maxReattemptsPer30Days: 8 }).maxReattemptsPer30Days).toBe(8);
  });

  it.each([
    [{ codes: { '51': { category: 'hard' } } }, 'codes.51.category'],
    [{ adviceCodes: { '24': { category: 'soft', minWait: '1 hour' } } }, 'adviceCodes.24.minWait'],
    [{ maxRetries: 3 }, 'maxRetries'],
    [{ finalAction: { subscription: 'pause', unscheduled: 'cancel' } }, 'finalAction.unscheduled'],
    [{ finalAction: { collections: 'x' } }, 'finalAction.collections'],
    [{ schedule: ['3d', '1d'] }, 'schedule.1'],
    [{ schedule: ['1d', '40d'] }, 'schedule'],
    [{ maxDeclinesPer24h: 0 }, 'maxDeclinesPer24h'],
  ])('rejects %j naming %s', (raw, key) => {
    let error: unknown;
    try {
      dunningConfigFrom(raw);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(DunningConfigError);
    expect((error as DunningConfigError).key).toBe(key);
    expect((error as Error).message).toContain(`dunning policy: ${key}:`);
  });

  it('reports an unreadable or malformed file', () => {
    expect(() =>
      loadDunningConfig({ env: { REBILL_DUNNING_POLICY_FILE: join(dir, 'missing.yaml') } }),
    ).toThrow(/REBILL_DUNNING_POLICY_FILE: cannot read .*ENOENT/);
    const bad = write('bad.json', '{ "codes": ');
    expect(() => loadDunningConfig({ file: bad })).toThrow(/is not valid JSON/);
  });

  it('a config can be reused as the base of another', () => {
    const base: DunningConfig = dunningConfigFrom({ jitter: '10m' });
    expect(dunningConfigFrom({ maxDeclinesPer24h: 5 }, base)).toMatchObject({
      jitterMs: 10 * MINUTE,
      maxDeclinesPer24h: 5,
    });
  });
});
