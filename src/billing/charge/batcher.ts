import { errorMessage } from '../../errors.ts';
import type { BillingContext } from '../context.ts';

/**
 * Group commit, the one batcher of the send loop (its authorizations, its settle acceptances):
 * an item is committed at once when no commit is running, and otherwise waits for the running
 * one to finish and goes with every other item that arrived meanwhile, in one statement. No
 * timer and no added delay: a quiet run commits one at a time, a busy one shares each
 * statement's fixed cost between the items that arrived during the last one.
 *
 * `commit` answers, in the order of the items it was given, each item's result. When a batch
 * statement fails (a guard refusing one item, a lost connection), its items are committed one
 * by one through the same `commit`, so one item's error is that item's alone: its promise
 * rejects, the others resolve.
 */
export function batcher<I, O>(
  ctx: Pick<BillingContext, 'logger'>,
  what: string,
  commit: (items: I[]) => Promise<O[]>,
  opts: { maxItems?: number } = {},
) {
  const maxItems = opts.maxItems ?? 64;
  interface Waiting {
    item: I;
    resolve: (o: O) => void;
    reject: (err: unknown) => void;
  }
  let waiting: Waiting[] = [];
  let running: Promise<void> | null = null;

  const one = (w: Waiting): Promise<void> => commit([w.item]).then((out) => w.resolve(out[0] as O), w.reject);

  const run = (batch: Waiting[]): Promise<void> =>
    commit(batch.map((w) => w.item)).then(
      (out) => {
        batch.forEach((w, i) => {
          w.resolve(out[i] as O);
        });
      },
      async (err: unknown) => {
        // A batch of one is tried once more too: a deadlock or a dropped connection is the
        // statement's, not the item's, and the second try is usually alone.
        ctx.logger.warn(
          { err: errorMessage(err), batch: batch.length },
          `${what} batch not committed; committing its items one by one`,
        );
        for (const w of batch) await one(w);
      },
    );

  const next = () => {
    if (running !== null || waiting.length === 0) return;
    const batch = waiting.slice(0, maxItems);
    waiting = waiting.slice(batch.length);
    running = run(batch).finally(() => {
      running = null;
      next();
    });
  };

  return {
    /** Commit one item, with others that arrive while a commit runs; resolves with its result. */
    add(item: I): Promise<O> {
      return new Promise<O>((resolve, reject) => {
        waiting.push({ item, resolve, reject });
        next();
      });
    },
    /** Resolves when every item handed in so far is committed (or has failed). */
    async close(): Promise<void> {
      next();
      while (running !== null) await running;
    },
  };
}
export type Batcher<I, O> = ReturnType<typeof batcher<I, O>>;
