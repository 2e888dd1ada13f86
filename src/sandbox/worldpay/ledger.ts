import type { LedgerEntry, SandboxStats } from './types.js';

/** What the sandbox saw: every answered request in order (bounded), and the counters behind its stats. */
export function createLedger(now: () => number, limit: number) {
  let ledger: LedgerEntry[] = [];
  let ledgerSeq = 0;
  let counters = freshCounters();

  function freshCounters() {
    return {
      requests: 0,
      staleLinkUses: 0,
      duplicateReferences: 0,
      throttled: 0,
      ops: {} as SandboxStats['ops'],
    };
  }

  return {
    record(entry: Omit<LedgerEntry, 'seq' | 'at'>): void {
      const byOutcome = counters.ops[entry.op] ?? {};
      counters.ops[entry.op] = byOutcome;
      byOutcome[entry.outcome] = (byOutcome[entry.outcome] ?? 0) + 1;
      ledgerSeq += 1;
      ledger.push({ seq: ledgerSeq, ...entry, at: new Date(now()).toISOString() });
      // Trim in chunks of a tenth so the copy is amortised over many requests.
      if (ledger.length > limit) ledger = ledger.slice(-Math.floor(limit * 0.9));
    },
    countRequest(): void {
      counters.requests += 1;
    },
    countThrottled(): void {
      counters.throttled += 1;
    },
    countStaleLinkUse(): void {
      counters.staleLinkUses += 1;
    },
    countDuplicateReference(): void {
      counters.duplicateReferences += 1;
    },
    /** Ledger entries with seq > since (all kept entries by default). */
    entries(since = 0): LedgerEntry[] {
      if (since <= 0) return ledger.slice();
      const first = ledger.findIndex((entry) => entry.seq > since);
      return first < 0 ? [] : ledger.slice(first);
    },
    stats(webhooks: SandboxStats['webhooks']): SandboxStats {
      return {
        requests: counters.requests,
        ops: structuredClone(counters.ops),
        staleLinkUses: counters.staleLinkUses,
        duplicateReferences: counters.duplicateReferences,
        throttled: counters.throttled,
        webhooks,
      };
    },
    reset(): void {
      ledger = [];
      ledgerSeq = 0;
      counters = freshCounters();
    },
  };
}

export type Ledger = ReturnType<typeof createLedger>;

/** A ledger entry before its outcome is known. */
export type LedgerDraft = Omit<LedgerEntry, 'seq' | 'at' | 'outcome' | 'httpStatus'>;
