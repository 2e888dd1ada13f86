import type { Outcome } from './types.js';

// Descriptions Try returns for its refusal codes (the `REFUSED{n}` magic names).
const DESCRIPTIONS: Record<string, string> = {
  '2': 'REFERRED',
  '4': 'HOLD CARD',
  '5': 'REFUSED',
  '8': 'APPROVE AFTER IDENTIFICATION',
  '13': 'INVALID AMOUNT',
  '15': 'INVALID CARD ISSUER',
  '17': 'ANNULATION BY CLIENT',
  '28': 'ACCESS DENIED',
  '29': 'IMPOSSIBLE REFERENCE NUMBER',
  '33': 'CARD EXPIRED',
  '34': 'FRAUD SUSPICION',
  '38': 'SECURITY CODE EXPIRED',
  '41': 'LOST CARD',
  '43': 'STOLEN CARD, PICK UP',
  '51': 'LIMIT EXCEEDED',
  '55': 'INVALID SECURITY CODE',
  '79': 'LIFE CYCLE',
  '83': 'FRAUD/SECURITY',
};

export function refusalDescription(code: string): string {
  return DESCRIPTIONS[code] ?? 'REFUSED';
}

const REFUSED_RC_MAC = /^REFUSEDRC(\d{1,3})MAC(\d{2})$/;
const REFUSED_N = /^REFUSED(\d{1,3})$/;

/**
 * The outcome a Try magic cardholder name asks for, or undefined for an ordinary name
 * (which authorizes). Names are matched case-sensitively, as Try does.
 */
export function magicNameOutcome(name: string | undefined): Outcome | undefined {
  if (name === undefined) return undefined;
  if (name === 'REFUSED') return { type: 'refuse', code: '5' };
  if (name === 'ERROR') return { type: 'error', status: 500 };
  const rcMac = REFUSED_RC_MAC.exec(name);
  if (rcMac) return { type: 'refuse', code: rcMac[1]!, adviceCode: rcMac[2]! };
  const n = REFUSED_N.exec(name);
  if (n) return { type: 'refuse', code: n[1]! };
  return undefined;
}
