/**
 * Words people read, one per concept, for the CLI's tables and the console alike (the README's
 * glossary): a proration charge is "proration" everywhere, never its internal cycle number
 * (below 0), and a run's counters read as words, not as the API's camelCase names.
 */

/** A charge's place in its mandate's calendar: its cycle, or "proration" for a change's one-off. */
export const cycleLabel = (c: { cycle: number | null; kind?: string | null }): string =>
  c.kind === 'proration' || c.cycle === null || c.cycle < 0 ? 'proration' : String(c.cycle);

/** A run's counters (RunCounts) as a reader names them. */
export const RUN_COUNT_LABELS = {
  due: 'due',
  created: 'created',
  attempted: 'attempted',
  authorized: 'authorized',
  refused: 'refused',
  unknown: 'outcome unknown',
  errors: 'errors',
  lostLeases: 'taken over',
  missedCycles: 'missed cycles',
  skipped: 'skipped',
  settleRequested: 'settle sent',
  settled: 'settled',
  reconciled: 'reconciled',
  needsNewCredential: 'new card needed',
  retryScheduled: 'retry later',
  stopped: 'stopped',
  failed: 'failed',
  changesApplied: 'changes applied',
  adopted: 'adopted from the gateway',
} as const;
