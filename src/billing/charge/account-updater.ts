/**
 * Worldpay's Account Updater on v7 charges (`WORLDPAY_ACCOUNT_UPDATER`): what an answer's
 * `updatedPaymentInstrument` means for the credential and the mandate. The write itself is
 * `applyCredentialUpdate` (src/billing/sql/credential-updates.ts), committed with the outcome.
 */
import { cardBrand } from '../../domain/card.ts';
import { encryptSecret, fingerprint } from '../../domain/card-crypto.ts';
import type { UpdatedInstrument } from '../../gateways/types.ts';
import type { BillingContext } from '../context.ts';
import type { RetryDecision } from '../dunning/retry-policy.ts';
import type { CredentialUpdate } from '../sql/credential-updates.ts';
import type { PlannedAttempt } from './outcome.ts';

/**
 * Messages that say the stored card will not be charged again: the mandate waits for new card
 * details instead of retrying. Matched loosely: Worldpay's messages carry their own misspellings
 * ("TThe expiration date was changed").
 */
const CLOSING = [/account was closed/i, /contact the cardholder/i];

/** Messages that report no update: nothing to write, nothing to tell. */
const NOTHING = /no changes found|no match found|not registered|does not participate/i;

/** What an answer's updater asks of the outcome's commit: the credential's update, and whether the card is finished. */
export interface AccountUpdate {
  update?: CredentialUpdate | undefined;
  /** The updater's message when it says the card is closed or the cardholder must be asked. */
  closing?: string | undefined;
}

const digitsOnly = (v: string | undefined): string | undefined =>
  v !== undefined && /^\d+$/.test(v) ? v : undefined;

/**
 * The update an answer carries, in the on-modes (`request`, `managed`) and on v7 charges only;
 * `off` applies nothing. A new card number is stored encrypted on a card/plain credential (whose
 * stored number it is); a token or network token credential keeps its instrument and takes the
 * new last four, BIN, brand and expiry.
 */
export function accountUpdateOf(
  ctx: BillingContext,
  p: PlannedAttempt,
  u: UpdatedInstrument | undefined,
): AccountUpdate {
  if (u === undefined || p.kind !== 'mit' || ctx.config.worldpay.accountUpdater === 'off') return {};
  const c = p.charge;
  const closing = CLOSING.some((re) => re.test(u.message)) ? u.message : undefined;
  const update: CredentialUpdate = {
    credentialId: c.credentialId,
    mandateId: c.mandateId,
    chargeId: c.id,
    reference: p.reference,
    message: u.message,
  };
  if (u.expiryMonth !== undefined && u.expiryYear !== undefined) {
    update.expiryMonth = u.expiryMonth;
    update.expiryYear = u.expiryYear;
  }
  const key = ctx.config.encryptionKey;
  if (u.cardNumber !== undefined && c.instrumentType === 'card/plain' && key) {
    update.encryptedPan = encryptSecret(u.cardNumber, key);
    update.fingerprint = `pan:${fingerprint(u.cardNumber, key)}`;
    update.lastFour = u.cardNumber.slice(-4);
    update.bin = u.cardNumber.slice(0, 6);
    update.brand = u.cardBrand ?? cardBrand(u.cardNumber) ?? undefined;
  } else {
    update.lastFour = digitsOnly(u.lastFour);
    update.bin = digitsOnly(u.cardBin);
    update.brand = u.cardBrand;
  }
  if (u.appliedNetworkToken) update.appliedNetworkToken = true;
  const changes =
    !NOTHING.test(u.message) &&
    (update.expiryMonth !== undefined ||
      update.encryptedPan !== undefined ||
      update.appliedNetworkToken === true ||
      update.lastFour !== undefined ||
      update.bin !== undefined);
  if (!changes && closing === undefined) return {};
  if (u.cardNumber !== undefined && update.encryptedPan === undefined && c.instrumentType === 'card/plain') {
    ctx.logger.warn(
      { chargeId: c.id, credentialId: c.credentialId },
      'Account Updater sent a new card number that cannot be stored (REBILL_ENCRYPTION_KEY is not set)',
    );
  }
  return { update, closing };
}

/** The dunning decision of a refusal whose updater says the card is finished: a new card, no retry. */
export function closingDecision(message: string): RetryDecision {
  return { action: 'needs_new_credential', reason: `Account Updater: ${message}`, blockCard: true };
}
