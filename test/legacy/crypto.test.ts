import { describe, expect, it } from 'vitest';
import { cardBrand, luhnValid, maskPan } from '../../src/domain/card.ts';
import {
  blobKeyId,
  DecryptError,
  decryptSecret,
  encryptSecret,
  fingerprint,
  KeyError,
  keyId,
  parseKey,
} from '../../src/domain/card-crypto.ts';
import { LegacyInstrumentError, legacyInstrument } from '../../src/legacy/instrument.ts';

const KEY = Buffer.alloc(32, 1);
const OTHER = Buffer.alloc(32, 2);
const PAN = '4444333322221111';

describe('card data encryption', () => {
  it('round-trips under the same key and names the key in the blob', () => {
    const blob = encryptSecret(PAN, KEY);
    expect(blob).toMatch(/^v1:[0-9a-f]{8}:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    expect(blob).not.toContain(PAN);
    expect(blobKeyId(blob)).toBe(keyId(KEY));
    expect(decryptSecret(blob, [OTHER, KEY])).toBe(PAN);
    // A fresh IV every time: equal plaintexts give different ciphertexts.
    expect(encryptSecret(PAN, KEY)).not.toBe(blob);
  });

  it('fails with a DecryptError for a missing key, a wrong key under a forged id, and tampering', () => {
    const blob = encryptSecret(PAN, KEY);
    expect(() => decryptSecret(blob, [OTHER])).toThrow(DecryptError);
    const relabelled = blob.replace(keyId(KEY), keyId(OTHER));
    expect(() => decryptSecret(relabelled, [OTHER])).toThrow(/does not authenticate/);
    const parts = blob.split(':');
    const ct = Buffer.from(parts[4]!, 'base64');
    ct[0] = ct[0]! ^ 1;
    parts[4] = ct.toString('base64');
    expect(() => decryptSecret(parts.join(':'), [KEY])).toThrow(/does not authenticate/);
    const tag = Buffer.from(parts[3]!, 'base64');
    tag[0] = tag[0]! ^ 1;
    expect(() => decryptSecret(blob.split(':').with(3, tag.toString('base64')).join(':'), [KEY])).toThrow(
      DecryptError,
    );
    expect(() => decryptSecret('v2:abc', [KEY])).toThrow(/not a v1 ciphertext/);
    try {
      decryptSecret(blob, [OTHER]);
    } catch (err) {
      expect(String((err as Error).message)).not.toContain(PAN);
    }
  });

  it('rejects keys that are not 32 bytes and parses hex and base64 keys', () => {
    expect(() => encryptSecret(PAN, Buffer.alloc(16))).toThrow(KeyError);
    expect(parseKey('01'.repeat(32))).toEqual(KEY);
    expect(parseKey(`${KEY.toString('base64')}\n`)).toEqual(KEY);
    expect(() => parseKey('abcd')).toThrow(KeyError);
  });

  it('fingerprints are deterministic per key and differ between keys and cards', () => {
    expect(fingerprint(PAN, KEY)).toBe(fingerprint(PAN, KEY));
    expect(fingerprint(PAN, KEY)).not.toBe(fingerprint(PAN, OTHER));
    expect(fingerprint(PAN, KEY)).not.toBe(fingerprint('5555555555554444', KEY));
    expect(fingerprint(PAN, KEY)).not.toContain(PAN);
  });
});

describe('card numbers', () => {
  it('checks Luhn', () => {
    for (const ok of ['4444333322221111', '378282246310005', '2221000000000009', '79927398713']) {
      expect(luhnValid(ok)).toBe(true);
    }
    for (const bad of ['4444333322221112', '79927398710', '', '4444-3333', 'abcd'])
      expect(luhnValid(bad)).toBe(false);
  });

  it.each([
    ['4444333322221111', 'visa'],
    ['5555555555554444', 'mastercard'],
    ['5105105105105100', 'mastercard'],
    ['2221000000000009', 'mastercard'],
    ['2720990000000007', 'mastercard'],
    ['2721000000000004', null],
    ['378282246310005', 'amex'],
    ['341111111111111', 'amex'],
    ['6759649826438453', 'maestro'],
    ['6304000000000000', 'maestro'],
    ['5018000000000009', 'maestro'],
    ['3530111333300000', 'jcb'],
    ['3589000000000003', 'jcb'],
    ['6011111111111117', 'discover'],
    ['6445644564456445', 'discover'],
    ['6500000000000002', 'discover'],
    ['36227206271667', 'diners'],
    ['30569309025904', 'diners'],
    ['6200000000000005', 'unionpay'],
    ['8171999927660000', 'unionpay'],
    ['9999999999999995', null],
  ])('brand of %s is %s', (pan, brand) => {
    expect(cardBrand(pan)).toBe(brand);
  });

  it('masks to BIN and last four at most', () => {
    expect(maskPan('4444333322221111')).toBe('444433******1111');
    expect(maskPan('123')).toBe('***');
  });
});

describe('legacyInstrument', () => {
  const base = { id: 7, tokenHref: null, expiryMonth: 12, expiryYear: 2030, cardHolderName: 'A Holder' };
  it('decrypts the stored number into the migrateRecurring instrument', () => {
    expect(
      legacyInstrument({ ...base, instrumentType: 'card/plain', encryptedPan: encryptSecret(PAN, KEY) }, [
        KEY,
      ]),
    ).toEqual({
      type: 'card/plain',
      cardNumber: PAN,
      expiryMonth: 12,
      expiryYear: 2030,
      cardHolderName: 'A Holder',
    });
    expect(
      legacyInstrument(
        { ...base, instrumentType: 'card/networkToken+applepay', encryptedPan: encryptSecret(PAN, KEY) },
        [OTHER, KEY],
      ),
    ).toMatchObject({ type: 'card/networkToken+applepay', dpan: PAN });
    expect(
      legacyInstrument(
        { ...base, instrumentType: 'card/token', encryptedPan: null, tokenHref: 'https://t/x' },
        [],
      ),
    ).toEqual({ type: 'card/token', href: 'https://t/x' });
  });

  it('refuses an erased credential or a missing key without naming the number', () => {
    expect(() =>
      legacyInstrument({ ...base, instrumentType: 'card/plain', encryptedPan: null }, [KEY]),
    ).toThrow(LegacyInstrumentError);
    expect(() =>
      legacyInstrument({ ...base, instrumentType: 'card/plain', encryptedPan: encryptSecret(PAN, KEY) }, []),
    ).toThrow(/REBILL_ENCRYPTION_KEY is not set/);
  });
});
