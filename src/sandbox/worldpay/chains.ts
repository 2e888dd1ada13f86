import { recurringLinkData } from './linkData.js';

// The link/verification store: each verified card is a chain of recurringAuthorize links, every
// authorization issuing the next one. Older links keep working but count as stale.

export interface Chain {
  id: string;
  cardKey?: string;
  holderName?: string;
  latestN: number;
}

export function createChainStore(nextId: () => string) {
  let chains = new Map<string, Chain>();
  let chainsByCard = new Map<string, Chain>();
  let recurringLinks = new Map<string, { chainId: string; n: number }>();

  return {
    create(cardKey: string | undefined, holderName: string | undefined): Chain {
      const chain: Chain = { id: `chain-${nextId()}`, cardKey, holderName, latestN: 0 };
      chains.set(chain.id, chain);
      if (cardKey) chainsByCard.set(cardKey, chain);
      return chain;
    },

    byCard(cardKey: string): Chain | undefined {
      return chainsByCard.get(cardKey);
    },

    /** The chain a recurringAuthorize link belongs to, and whether a later link has been issued. */
    byLink(linkData: string): { chain: Chain; stale: boolean } | undefined {
      const link = recurringLinks.get(linkData);
      if (!link) return undefined;
      const chain = chains.get(link.chainId)!;
      return { chain, stale: link.n !== chain.latestN };
    },

    /** Issues the chain's next recurringAuthorize link; older links keep working but count as stale. */
    rotate(chain: Chain): string {
      chain.latestN += 1;
      const linkData = recurringLinkData(chain.id, chain.latestN);
      recurringLinks.set(linkData, { chainId: chain.id, n: chain.latestN });
      return linkData;
    },

    reset(): void {
      chains = new Map();
      chainsByCard = new Map();
      recurringLinks = new Map();
    },
  };
}

export type ChainStore = ReturnType<typeof createChainStore>;
