/** The charge loop of a run: claim, prepare and send as a pipeline. */
import { batcher } from '../charge/batcher.ts';
import { mandateHolds } from '../charge/holds.ts';
import { settlesOffSlot } from '../charge/off-slot.ts';
import { outcomeBatcher } from '../charge/outcome.ts';
import { prepareBatch, type Ready } from '../charge/prepare.ts';
import { type GroupEnd, sendGroup } from '../charge/send.ts';
import { acceptanceBatcher } from '../charge/settle.ts';
import type { BillingContext } from '../context.ts';
import { type ClaimCursor, claimCursor, claimDueCharges } from '../sql/claim-due.ts';
import { type LaunchItem, launchAttempts } from '../sql/write-ahead.ts';
import type { RunOptions } from './options.ts';
import { recordProgress } from './record.ts';
import { growthStatistics } from './statistics.ts';
import { noteError, type RunTally } from './tally.ts';

/**
 * Claim, write ahead and send every due charge as a pipeline: `concurrency` senders take groups
 * from a queue, and whenever fewer than `concurrency` groups are waiting the next batch is
 * claimed and written ahead while the senders keep going. The gateway never idles between
 * batches, and senders do not start and finish in lockstep (the two lanes this replaced did:
 * both drained at once, which left the event loop with bursts of work and the gateway idle).
 * A claimed batch waits at most about one batch's worth of sends before it goes out, and a
 * sender checks the lease still has its margin before each request. Memory holds at most about
 * two batches. When a claim fails or the run is stopped, no more is claimed, what is already
 * written ahead is still sent, and a claim error is thrown once the senders are done.
 */
export async function sendDue(ctx: BillingContext, opts: RunOptions, book: RunTally): Promise<void> {
  const { counts, runId } = book;
  // Listening before the first launch: a hold committed after a launch's read is heard of.
  book.holds = await mandateHolds(ctx.database);
  const concurrency = ctx.config.billing.concurrency;
  const batchSize = ctx.config.billing.batchSize;
  // PGlite has one connection: prefetching would only queue the claim behind the commits.
  const lowWater = ctx.database.concurrent ? concurrency : 0;
  const queue: Ready[][] = [];
  let remaining = opts.limit ?? Number.POSITIVE_INFINITY;
  let exhausted = false;
  let failure: unknown;
  let feeding: Promise<void> | null = null;
  let lastProgressWrite = Date.now();
  let cursor: ClaimCursor | null = null;
  const statistics = growthStatistics(ctx);

  const feed = async () => {
    const limit = Math.min(batchSize, remaining);
    remaining -= limit;
    const claim = (after: ClaimCursor | null) =>
      claimDueCharges(ctx.database, {
        asOf: opts.asOf,
        owner: ctx.workerId,
        leaseSeconds: ctx.config.billing.leaseSeconds,
        limit,
        mandateId: opts.mandateId,
        after,
      });
    // After the last claim in order; when that runs dry, once more from the start, for what the
    // cursor stepped over (held by another worker then, or made due meanwhile).
    let claimed = await claim(cursor);
    if (claimed.length === 0 && cursor !== null) claimed = await claim(null);
    cursor = claimCursor(claimed) ?? cursor;
    remaining += limit - claimed.length;
    if (claimed.length === 0 || remaining <= 0) exhausted = true;
    if (claimed.length === 0) return;
    counts.due += claimed.length;
    for (const c of claimed) book.credentials.add(c.credentialId);
    statistics.claimed(counts.due);
    queue.push(...(await prepareBatch(ctx, claimed, opts.asOf, book)));
    if (Date.now() - lastProgressWrite > 1000) {
      lastProgressWrite = Date.now();
      await recordProgress(ctx.database, runId, counts);
    }
  };
  const stopping = () => exhausted || failure !== undefined || opts.signal?.aborted === true;
  const refill = () => {
    if (feeding || stopping() || queue.length > lowWater) return;
    feeding = feed()
      .catch((err) => {
        failure = err;
      })
      .finally(() => {
        feeding = null;
      });
  };
  // Each credential's last group taken by a sender: a credential's charges claimed in a later
  // batch go after it, from the link it ended on (the claim read the link before it was sent).
  const lastGroup = new Map<number, Promise<GroupEnd>>();
  const send = async (group: Ready[]) => {
    const credentialId = group[0]!.attempt.charge.credentialId;
    const before = lastGroup.get(credentialId);
    const sending = (async () =>
      sendGroup(
        ctx,
        group,
        book,
        () => opts.onProgress?.(counts),
        before && (await before.catch(() => ({}))),
      ))();
    lastGroup.set(credentialId, sending);
    try {
      await sending;
    } finally {
      if (lastGroup.get(credentialId) === sending) lastGroup.delete(credentialId);
    }
  };
  const sender = async () => {
    for (;;) {
      refill();
      const group = queue.shift();
      if (group) {
        // Written ahead already: sent even when claiming failed or the run is stopping.
        await send(group);
        continue;
      }
      if (feeding) {
        await feeding;
        continue;
      }
      return;
    }
  };
  // Settle acceptances are committed in batches while the loop runs (several connections);
  // on PGlite's one connection each commits at once, as before.
  const batch = ctx.database.concurrent
    ? acceptanceBatcher(ctx, { onError: (message) => noteError(book, message) })
    : undefined;
  book.acceptances = batch;
  // Authorizations that come back while one is being committed are committed together.
  const outcomes = ctx.database.concurrent ? outcomeBatcher(ctx) : undefined;
  book.outcomes = outcomes;
  // So are the launches, each sender's last statement before its request.
  const launches = ctx.database.concurrent
    ? batcher(ctx, 'launch', (items: LaunchItem[]) => launchAttempts(ctx.database, items))
    : undefined;
  book.launches = launches;
  // A sender does not wait for its settle's answer (at most `concurrency` wait at once); their
  // acceptances go to the batch above, so they are all in before it closes.
  const settles = ctx.database.concurrent ? settlesOffSlot(Math.max(1, concurrency)) : undefined;
  book.settles = settles;
  try {
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, sender));
  } finally {
    book.settles = undefined;
    await settles?.drain().catch((err: unknown) => {
      failure ??= err;
    });
    book.launches = undefined;
    await launches?.close();
    book.outcomes = undefined;
    await outcomes?.close();
    book.acceptances = undefined;
    await batch?.close();
    await statistics.close();
  }
  if (failure !== undefined) throw failure;
}
