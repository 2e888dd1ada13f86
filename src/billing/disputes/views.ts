import type { Database } from '../../db/client.ts';
import { type DisputeRow, disputesOf } from '../sql/disputes.ts';

/** A charge's dispute as the API, the CLI and the events show it. */
export interface DisputeView {
  id: number;
  chargeId: number;
  /** `information_requested` (open: the issuer asked, the funds are held) or `charged_back`. */
  status: string;
  /** Minor units, in `currency`. */
  amount: number;
  currency: string;
  reasonCode: string | null;
  reason: string | null;
  /** When the dispute was opened, by Worldpay's event timestamp. */
  disputedAt: string;
  chargedBackAt: string | null;
  /** When rebill received the first event of it. */
  receivedAt: string;
  /** What the chargeback did to the card's mandates (REBILL_CHARGEBACK_POLICY); null while open. */
  policy: string | null;
}

export function toDisputeView(r: DisputeRow): DisputeView {
  return {
    id: r.id,
    chargeId: r.charge_id,
    status: r.status,
    amount: r.amount,
    currency: r.currency,
    reasonCode: r.reason_code,
    reason: r.reason,
    disputedAt: r.disputed_at.toISOString(),
    chargedBackAt: r.charged_back_at?.toISOString() ?? null,
    receivedAt: r.created_at.toISOString(),
    policy: r.policy,
  };
}

/** The disputes of a charge (at most one today; a list, so a second one would fit). */
export async function chargeDisputes(database: Database, chargeId: number): Promise<DisputeView[]> {
  return (await disputesOf(database, [chargeId])).map(toDisputeView);
}
