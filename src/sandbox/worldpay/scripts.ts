import type { Outcome, ScriptOp, ScriptRule } from './types.js';

/** The instrument a v7 request was charged with, as scripts match it (any of them may match). */
export interface InstrumentKeys {
  cardNumbers: readonly string[];
  tokenHref?: string;
  networkToken?: string;
}

/** The scripted behaviours: outcomes queued by the control API, taken one per matching request. */
export function createScriptBook() {
  let scripts: ScriptRule[] = [];

  return {
    add(rule: ScriptRule): void {
      scripts.push({ match: { ...rule.match }, outcomes: [...rule.outcomes] });
    },

    /**
     * Takes the next scripted outcome: by transaction reference first, then instrument (v7),
     * then chain, then any.
     */
    next(
      op: ScriptOp,
      transactionReference?: string,
      chainId?: string,
      instrument?: InstrumentKeys,
    ): Outcome | undefined {
      if (scripts.length === 0) return undefined;
      const opOf = (rule: ScriptRule) => rule.match.op ?? 'authorize';
      const pick = (test: (rule: ScriptRule) => boolean): Outcome | undefined => {
        const index = scripts.findIndex(
          (rule) => opOf(rule) === op && rule.outcomes.length > 0 && test(rule),
        );
        if (index < 0) return undefined;
        const rule = scripts[index]!;
        const outcome = rule.outcomes.shift();
        if (rule.outcomes.length === 0) scripts.splice(index, 1);
        return outcome;
      };
      return (
        (transactionReference !== undefined
          ? pick((r) => r.match.transactionReference === transactionReference)
          : undefined) ??
        (instrument !== undefined
          ? pick(
              (r) =>
                (r.match.cardNumber !== undefined && instrument.cardNumbers.includes(r.match.cardNumber)) ||
                (r.match.tokenHref !== undefined && r.match.tokenHref === instrument.tokenHref) ||
                (r.match.networkToken !== undefined && r.match.networkToken === instrument.networkToken),
            )
          : undefined) ??
        (chainId !== undefined ? pick((r) => r.match.chainId === chainId) : undefined) ??
        pick((r) => r.match.any === true)
      );
    },

    reset(): void {
      scripts = [];
    },
  };
}

export type ScriptBook = ReturnType<typeof createScriptBook>;

/** Unwraps `slow` into a delay around the outcome it wraps. */
export function unwrap(outcome: Outcome | undefined): { outcome: Outcome | undefined; delayMs: number } {
  let delayMs = 0;
  let current = outcome;
  while (current?.type === 'slow') {
    delayMs += current.ms;
    current = current.next;
  }
  return { outcome: current, delayMs };
}
