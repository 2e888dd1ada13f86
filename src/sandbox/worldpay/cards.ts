import { randomBytes } from 'node:crypto';
import { digits } from './replies.js';

// The cards Card Payments v7 first payments made known: a card's numbers, the Worldpay token and
// network token issued for it, and the scheme reference of its first customer-initiated payment,
// so a merchant-initiated payment by any of them is the same card (for scripts and answers).
// Card numbers stay in memory only: nothing here reaches a ledger entry or an answer unmasked.

export interface NetworkToken {
  number: string;
  expiryMonth: number;
  expiryYear: number;
}

export interface V7Card {
  id: string;
  /** Every number the card has had, newest last (Account Updater may add one). */
  cardNumbers: string[];
  expiryMonth: number;
  expiryYear: number;
  holderName?: string;
  tokenHref?: string;
  networkToken?: NetworkToken;
  /** The scheme reference of the card's first customer-initiated payment. */
  schemeReference?: string;
}

export type CardBrand = 'visa' | 'mastercard' | 'amex' | 'maestro' | 'jcb' | 'discover' | 'diners';

/** The brand a card number's leading digits name (test cards of WORLDPAY.md and the like). */
export function cardBrand(cardNumber: string): CardBrand {
  if (/^3[47]/.test(cardNumber)) return 'amex';
  if (/^(5[1-5]|2[2-7])/.test(cardNumber)) return 'mastercard';
  if (/^(50|5[6-8]|6[37])/.test(cardNumber)) return 'maestro';
  if (/^35/.test(cardNumber)) return 'jcb';
  if (/^(6011|65|64[4-9])/.test(cardNumber)) return 'discover';
  if (/^3[0689]/.test(cardNumber)) return 'diners';
  return 'visa';
}

/**
 * A scheme reference as the brand's network issues it: Mastercard's trace id ends in two spaces
 * (as in Worldpay's own example, `"MCCOLXT1C0104  "`), so a client that trims it is caught;
 * the others are 15 digits.
 */
export function schemeReferenceFor(brand: CardBrand): string {
  if (brand !== 'mastercard') return digits(15);
  const alnum = randomBytes(9)
    .toString('base64')
    .replace(/[^A-Za-z0-9]/g, '7')
    .toUpperCase()
    .slice(0, 9);
  return `MCC${alnum}  `;
}

/** A network token number in the card's brand range: the card's first four digits, then random. */
function networkTokenNumber(cardNumber: string): string {
  return cardNumber.slice(0, 4) + digits(cardNumber.length - 4);
}

export function createCardStore(nextId: () => string) {
  let byNumber = new Map<string, V7Card>();
  let byToken = new Map<string, V7Card>();
  let byNetworkToken = new Map<string, V7Card>();

  return {
    byNumber: (cardNumber: string) => byNumber.get(cardNumber),
    byToken: (href: string) => byToken.get(href),
    byNetworkToken: (tokenNumber: string) => byNetworkToken.get(tokenNumber),

    /** The card with this number, made known now if new; its expiry and holder follow the latest payment. */
    remember(input: {
      cardNumber: string;
      expiryMonth: number;
      expiryYear: number;
      holderName?: string;
    }): V7Card {
      let card = byNumber.get(input.cardNumber);
      if (!card) {
        card = {
          id: `card-${nextId()}`,
          cardNumbers: [input.cardNumber],
          expiryMonth: input.expiryMonth,
          expiryYear: input.expiryYear,
        };
        byNumber.set(input.cardNumber, card);
      }
      card.expiryMonth = input.expiryMonth;
      card.expiryYear = input.expiryYear;
      if (input.holderName !== undefined) card.holderName = input.holderName;
      return card;
    },

    /** The card's Worldpay token (one per card, as Worldpay answers a repeated creation). */
    token(card: V7Card, base: string): string {
      if (!card.tokenHref) {
        card.tokenHref = `${base}/tokens/${randomBytes(24).toString('base64url')}`;
        byToken.set(card.tokenHref, card);
      }
      return card.tokenHref;
    },

    /** The card's network token (one per card). */
    networkToken(card: V7Card): NetworkToken {
      if (!card.networkToken) {
        const number = networkTokenNumber(card.cardNumbers[0]!);
        // A network token's expiry is its own: a year past the card's, so a client that sends
        // the card's expiry with the token is caught.
        card.networkToken = { number, expiryMonth: card.expiryMonth, expiryYear: card.expiryYear + 1 };
        byNetworkToken.set(number, card);
      }
      return card.networkToken;
    },

    /** Account Updater: the card has a new number, expiry or network token from now on. */
    update(
      card: V7Card,
      change: { cardNumber?: string; expiryMonth?: number; expiryYear?: number; networkToken?: NetworkToken },
    ): void {
      if (change.cardNumber !== undefined && !card.cardNumbers.includes(change.cardNumber)) {
        card.cardNumbers.push(change.cardNumber);
        byNumber.set(change.cardNumber, card);
      }
      if (change.expiryMonth !== undefined) card.expiryMonth = change.expiryMonth;
      if (change.expiryYear !== undefined) card.expiryYear = change.expiryYear;
      if (change.networkToken !== undefined) {
        card.networkToken = { ...change.networkToken };
        byNetworkToken.set(change.networkToken.number, card);
      }
    },

    reset(): void {
      byNumber = new Map();
      byToken = new Map();
      byNetworkToken = new Map();
    },
  };
}

export type CardStore = ReturnType<typeof createCardStore>;
