// Link data shaped like Try's: base64 JSON, a dot, then an opaque part that holds `+`, `/`, `:`
// and `=`. The opaque part is deliberate: a client that re-encodes the href (`%2B`, `%2F`) or
// builds it from parts no longer hits the same resource, just as on Worldpay.
// No random `/`: an accidental `//` would be folded by some proxies, which Worldpay never sends.
const OPAQUE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-_';

function opaquePart(): string {
  // Math.random, not crypto: uniqueness comes from the JSON part, and this is the hot path.
  let out = '';
  for (let i = 0; i < 18; i++) out += OPAQUE_ALPHABET[Math.floor(Math.random() * OPAQUE_ALPHABET.length)];
  // Always carry each special character at least once, so every link exercises them.
  return out.slice(0, 6) + '+' + out.slice(6, 12) + '/' + out.slice(12) + ':' + '==';
}

function jsonPart(payload: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(payload)).toString('base64');
}

/** Link data of a recurring chain's `n`-th recurringAuthorize link. */
export function recurringLinkData(chainId: string, n: number): string {
  return jsonPart({ k: chainId, n, linkVersion: '1.0.0' }) + '.' + opaquePart();
}

/** Link data shared by all action links (settle, cancel, events...) of one payment. */
export function paymentLinkData(paymentId: string): string {
  return jsonPart({ k: paymentId }) + '.' + opaquePart();
}
