/**
 * What migrateRecurring is sent for a legacy credential that has no recurring link yet: the
 * stored instrument, with the PAN/DPAN decrypted just for this request. The billing core calls
 * it, sends the request, and erases the number (erasePan) once the first charge succeeds.
 */
import type { Credential } from '../db/schema.ts';
import { decryptSecret } from '../domain/card-crypto.ts';
import { RebillError } from '../errors.ts';
import type { Instrument } from '../gateways/types.ts';

/** A legacy credential that cannot be sent as it is stored (no href, no expiry, no key): internal. */
export class LegacyInstrumentError extends RebillError {
  static override readonly type: string = 'LegacyInstrumentError';
}

/**
 * The gateway instrument for a not-yet-migrated credential. `keys`: the current key first, then
 * any older one still configured. Errors name the credential, never its number.
 */
export function legacyInstrument(
  credential: Pick<
    Credential,
    'id' | 'instrumentType' | 'encryptedPan' | 'tokenHref' | 'expiryMonth' | 'expiryYear' | 'cardHolderName'
  >,
  keys: readonly Buffer[],
): Instrument {
  const holder = credential.cardHolderName ? { cardHolderName: credential.cardHolderName } : {};
  switch (credential.instrumentType) {
    case 'card/token':
      if (!credential.tokenHref)
        throw new LegacyInstrumentError(`credential ${credential.id} has no token href`);
      return { type: 'card/token', href: credential.tokenHref };
    case 'card/plain':
    case 'card/networkToken+applepay': {
      if (!credential.encryptedPan) {
        throw new LegacyInstrumentError(
          `credential ${credential.id} holds no card number (erased after migration?)`,
        );
      }
      if (credential.expiryMonth == null || credential.expiryYear == null) {
        throw new LegacyInstrumentError(`credential ${credential.id} has no expiry date`);
      }
      if (keys.length === 0) throw new LegacyInstrumentError('REBILL_ENCRYPTION_KEY is not set');
      const number = decryptSecret(credential.encryptedPan, keys);
      const expiry = { expiryMonth: credential.expiryMonth, expiryYear: credential.expiryYear };
      return credential.instrumentType === 'card/plain'
        ? { type: 'card/plain', cardNumber: number, ...expiry, ...holder }
        : { type: 'card/networkToken+applepay', dpan: number, ...expiry, ...holder };
    }
    default:
      throw new LegacyInstrumentError(
        `credential ${credential.id} has instrument type ${credential.instrumentType}, not a legacy one`,
      );
  }
}
