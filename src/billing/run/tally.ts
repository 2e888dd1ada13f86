import type { Batcher } from '../charge/batcher.ts';
import type { MandateHolds } from '../charge/holds.ts';
import type { SettlesOffSlot } from '../charge/off-slot.ts';
import type { OutcomeBatcher } from '../charge/outcome.ts';
import type { AcceptanceBatcher } from '../charge/settle.ts';
/** What a billing run keeps while it goes: its counts, the leases it holds, its first errors. */

import { RUN_COUNT_LABELS } from '../../domain/labels.ts';
import type { RetryDecision } from '../dunning/retry-policy.ts';
import type { Launch, LaunchItem } from '../sql/write-ahead.ts';

export interface RunCounts {
  due: number;
  created: number;
  attempted: number;
  authorized: number;
  refused: number;
  unknown: number;
  errors: number;
  /** Outcomes not committed because another worker or an operator took the charge over. */
  lostLeases: number;
  /** Cycles recorded as skipped: more than REBILL_MAX_CATCH_UP_CYCLES behind. */
  missedCycles: number;
  skipped: number;
  settleRequested: number;
  settled: number;
  reconciled: number;
  needsNewCredential: number;
  retryScheduled: number;
  stopped: number;
  failed: number;
  /** Scheduled mandate changes applied by this run. */
  changesApplied: number;
  /**
   * Attempts the gateway already had under their reference (sent by a worker whose database
   * forgot it), adopted from what the gateway reports; also counted as authorized, refused or
   * unknown.
   */
  adopted: number;
}

/** Every counter has its label (src/domain/labels.ts): a new counter without one does not compile. */
export const countLabels: Record<keyof RunCounts, string> = RUN_COUNT_LABELS;

export const zero = (): RunCounts => ({
  adopted: 0,
  changesApplied: 0,
  due: 0,
  created: 0,
  attempted: 0,
  authorized: 0,
  refused: 0,
  unknown: 0,
  errors: 0,
  lostLeases: 0,
  missedCycles: 0,
  skipped: 0,
  settleRequested: 0,
  settled: 0,
  reconciled: 0,
  needsNewCredential: 0,
  retryScheduled: 0,
  stopped: 0,
  failed: 0,
});

/** Nothing happened: no charge created, sent, settled, reconciled or changed, no error. */
export const isIdle = (counts: RunCounts): boolean => Object.values(counts).every((n) => n === 0);

export function count(counts: RunCounts, d: RetryDecision): void {
  if (d.action === 'retry') counts.retryScheduled++;
  else if (d.action === 'needs_new_credential') counts.needsNewCredential++;
  else if (d.action === 'stop') counts.stopped++;
  else counts.failed++;
}

/** What a run keeps while it goes: its counts, the leases it holds on deferred charges, errors. */
export interface RunTally {
  runId: number;
  counts: RunCounts;
  /** Charges deferred in this run (id -> fence): leased until the run ends, so not retried in it. */
  held: Map<number, number>;
  /** Credentials leased with this run's claims: one run sends a credential's charges at a time. */
  credentials: Set<number>;
  /** Who holds them: the worker and the run, so two runs of one process are two holders. */
  holder: string;
  /** The first distinct error messages, for the report. */
  errors: string[];
  /** Where the send loop's settle acceptances wait for their batched commit (PostgreSQL). */
  acceptances?: AcceptanceBatcher | undefined;
  /** Where the send loop's authorizations wait for their group commit (PostgreSQL). */
  outcomes?: OutcomeBatcher | undefined;
  /** Where the send loop's launches wait for their group commit (PostgreSQL). */
  launches?: Batcher<LaunchItem, Launch> | undefined;
  /** Settles sent off the slot: the sender does not wait for their answers (PostgreSQL). */
  settles?: SettlesOffSlot | undefined;
  /** The mandates held since the launches read them, heard from the database. */
  holds?: MandateHolds | undefined;
}

export function noteError(book: RunTally, message: string): void {
  book.counts.errors++;
  if (book.errors.length < 10 && !book.errors.includes(message)) book.errors.push(message);
}
