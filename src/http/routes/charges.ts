import { z } from 'zod';
import type { BillingContext } from '../../billing/context.ts';
import { listDisputes } from '../../billing/disputes/views.ts';
import { getCharge, listCharges, retryNow } from '../../billing/operator/charges.ts';
import { parseInstant } from '../../domain/instant.ts';
import { chargeMachine, disputeMachine } from '../../domain/lifecycle.ts';
import { defineRoute, type RouteDef } from '../route.ts';
import { emptyBody, int, oneOf } from './filters.ts';

const chargeStates = [...Object.keys(chargeMachine.transitions), 'dunning'];
const chargeQuery = z
  .object({
    state: oneOf(chargeStates).optional(),
    mandateId: int.optional(),
    /** The last refusal's code, as `rebill charges list --code`. */
    code: z
      .string()
      .regex(/^[A-Za-z0-9]{1,8}$/, 'must be a refusal code such as 51')
      .optional(),
    /** Due at or after (ISO 8601), as `rebill charges list --due-from`. */
    dueFrom: z.string().max(64).optional(),
    /** Due before (ISO 8601). */
    dueTo: z.string().max(64).optional(),
    limit: int.max(1000).optional(),
    after: int.optional(),
  })
  .strict();

const disputeQuery = z
  .object({
    status: oneOf(Object.keys(disputeMachine.transitions)).optional(),
    mandateId: int.optional(),
    limit: int.max(1000).optional(),
    after: int.optional(),
  })
  .strict();

/** Charges listed and read, a charge in dunning retried now, and the charges' disputes. */
export function chargeRoutes(ctx: BillingContext): RouteDef[] {
  const db = ctx.database;
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/charges',
      tag: 'charges',
      summary: 'List charges with their last refusal code, advice, decision and next attempt',
      query: chargeQuery,
      status: 200,
      handler: async ({ query: { code, dueFrom, dueTo, ...q } }) =>
        listCharges(db, {
          ...q,
          refusalCode: code,
          dueFrom: dueFrom === undefined ? undefined : parseInstant('dueFrom', dueFrom),
          dueTo: dueTo === undefined ? undefined : parseInstant('dueTo', dueTo),
        }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/charges/:id',
      tag: 'charges',
      summary: 'A charge with its payment actions, events and disputes (chargebacks)',
      status: 200,
      handler: async ({ params }) => getCharge(db, params.id),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/disputes',
      tag: 'charges',
      summary:
        'Disputes of charges (Worldpay informationRequested and chargedBack), oldest first; each charge shows its own too',
      query: disputeQuery,
      status: 200,
      handler: async ({ query }) => listDisputes(db, query),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/charges/:id/retry-now',
      tag: 'charges',
      summary:
        'Retry a charge in dunning now, if its scheme rules allow it (as `rebill charges retry-now`); answers the run report',
      body: emptyBody,
      bodyFirst: true,
      status: 200,
      handler: async ({ params }) => retryNow(ctx, params.id),
    }),
  ];
}
