/**
 * Settles sent off the slot. Once an authorization's commit (with its settle's write-ahead row)
 * is in, nothing its credential sends next depends on the settle's answer: the next charge goes
 * on the link the authorization returned, and the answer only records the settle. So a sender
 * hands the settle here and takes its next charge at once, and at a gateway latency L a slot
 * carries a charge every L instead of every 2L. At most `limit` settles wait at once (a sender
 * handing in one more waits for a place), and the run waits for all of them (`drain`) before
 * it commits the last acceptances and releases its leases.
 */
export function settlesOffSlot(limit: number) {
  const running = new Set<Promise<void>>();
  const places: (() => void)[] = [];
  let failure: { err: unknown } | undefined;
  return {
    /** Hand in a settle under way; resolves once it has a place (at once below the limit). */
    async add(settle: Promise<void>): Promise<void> {
      const p = settle
        .catch((err: unknown) => {
          failure ??= { err };
        })
        .finally(() => {
          running.delete(p);
          places.shift()?.();
        });
      running.add(p);
      while (running.size > limit) await new Promise<void>((r) => places.push(r));
    },
    /** Wait for every settle handed in; the first one that failed is thrown, as if awaited in place. */
    async drain(): Promise<void> {
      while (running.size > 0) await Promise.all([...running]);
      if (failure) throw failure.err;
    },
  };
}
export type SettlesOffSlot = ReturnType<typeof settlesOffSlot>;
