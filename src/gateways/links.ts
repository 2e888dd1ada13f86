import type { Links } from './types.ts';

/**
 * A payment's links by RELATION, whatever CURIE prefix the gateway gave them: v6 answers name
 * them `payments:settle`, v7 ones `cardPayments:settle`, and the v7 file's own examples use
 * `payments:` on some. The prefix is never matched on; `payments:` is looked at first so that a
 * v6 payment's links are read exactly as before.
 */

/** The relation of a link name: the part after its CURIE prefix (`cardPayments:settle` → `settle`). */
export function relationOf(name: string): string {
  const colon = name.lastIndexOf(':');
  return colon < 0 ? name : name.slice(colon + 1);
}

/** The href of the first of `relations` the payment has a link for, or undefined. */
export function linkFor(links: Links, ...relations: string[]): string | undefined {
  for (const rel of relations) {
    const v6 = links[`payments:${rel}`];
    if (v6 !== undefined) return v6;
  }
  for (const rel of relations) {
    for (const [name, href] of Object.entries(links)) if (relationOf(name) === rel) return href;
  }
  return undefined;
}

/**
 * The relations an operator's payment action may be offered under: a reversal is v6's
 * `payments:reversal` and v7's `cardPayments:reverse`.
 */
export function actionRelations(kind: string): string[] {
  return kind === 'reversal' ? ['reversal', 'reverse'] : [kind];
}

/** The link an action of this kind follows, by relation. */
export const actionLink = (links: Links, kind: string): string | undefined =>
  linkFor(links, ...actionRelations(kind));

/** Whether a payment's links came from Card Payments v7 (its `cardPayments:` relations). */
export const isV7Links = (links: Links): boolean =>
  Object.keys(links).some((name) => name.startsWith('cardPayments:'));
