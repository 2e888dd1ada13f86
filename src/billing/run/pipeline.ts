/** The charge loop of a run: claim, prepare and send as a pipeline. */
import { batcher } from '../charge/batcher.ts';
import { mandateHolds } from '../charge/holds.ts';
import { settlesOffSlot } from '../charge/off-slot.ts';
import { outcomeBatcher } from '../charge/outcome.ts';
import { prepareBatch, type Ready } from '../charge/prepare.ts';
import { type GroupStart, sendGroup } from '../charge/send.ts';
import { acceptanceBatcher } from '../charge/settle.ts';
import type { BillingContext } from '../context.ts';
import { type ClaimCursor, claimCursor, claimDueCharges } from '../sql/claim-due.ts';
import { credentialNow } from '../sql/credentials.ts';
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
  const reread = new WeakSet<Ready[]>();

  const feed = async () => {
    const limit = Math.min(batchSize, remaining);
    remaining -= limit;
    const claim = (after: ClaimCursor | null) =>
      claimDueCharges(ctx.database, {
        asOf: opts.asOf,
        owner: ctx.workerId,
        holder: book.holder,
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
    // A credential an earlier batch of this run claimed: its groups here are sent after that
    // batch's, on what they left (the claim read the credential before they were sent).
    const again = new Set(
      claimed.filter((c) => book.credentials.has(c.credentialId)).map((c) => c.credentialId),
    );
    for (const c of claimed) book.credentials.add(c.credentialId);
    statistics.claimed(counts.due);
    const groups = await prepareBatch(ctx, claimed, opts.asOf, book);
    for (const g of groups) if (again.has(credentialOf(g))) reread.add(g);
    queue.push(...groups);
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
  // Each credential's group being sent: a group of the same credential from a later batch
  // waits for it (groups leave the queue in order, so an earlier one is here or done).
  const inFlight = new Map<number, Promise<void>>();
  const send = async (group: Ready[]) => {
    const credentialId = credentialOf(group);
    const before = inFlight.get(credentialId);
    const sending = (async () => {
      await before;
      const start = reread.has(group) ? await startOf(ctx, credentialId) : {};
      await sendGroup(ctx, group, book, () => opts.onProgress?.(counts), start);
    })();
    const done = sending.catch(() => {});
    inFlight.set(credentialId, done);
    try {
      await sending;
    } finally {
      if (inFlight.get(credentialId) === done) inFlight.delete(credentialId);
    }
  };
  const sender = async () => {
    for (;;) {
      refill();
      const group = queue.shift();
      if (group) {
        // Written ahead already: sent even when claiming failed or the run is stopping. A
        // sender that fails stops the claims and goes on with the queue, so the run ends (and
        // releases its credentials) only once nothing is being sent.
        await send(group).catch((err: unknown) => {
          failure ??= err;
        });
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

const credentialOf = (group: Ready[]): number => group[0]!.attempt.charge.credentialId;

/** A credential as an earlier group of the run left it: the link it is on, and a block. */
async function startOf(ctx: BillingContext, credentialId: number): Promise<GroupStart> {
  const now = await credentialNow(ctx.database, credentialId);
  return {
    newest: now.linkHref ?? undefined,
    blocked: now.status === 'active' ? undefined : `a refusal (credential ${credentialId} is ${now.status})`,
  };
}
