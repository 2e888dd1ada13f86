import type { BillingContext } from '../../billing/context.ts';
import type { Runner } from '../../billing/run/runner.ts';
import type { RouteDef } from '../route.ts';
import { chargeRoutes } from './charges.ts';
import { eventRoutes } from './events.ts';
import { exportRoutes } from './exports.ts';
import { mandateRoutes } from './mandates.ts';
import { paymentRoutes } from './payments.ts';
import { paypalRoutes } from './paypal.ts';
import { reportRoutes } from './reports.ts';
import { runRoutes } from './runs.ts';

export { opsRoutes } from './ops.ts';

/** The admin API's business routes. Handlers only call a service and shape the answer. */
export function adminRoutes(ctx: BillingContext, runner: Runner): RouteDef[] {
  return [
    ...runRoutes(ctx, runner),
    ...mandateRoutes(ctx),
    ...chargeRoutes(ctx),
    ...paymentRoutes(ctx),
    ...paypalRoutes(ctx),
    ...eventRoutes(ctx),
    ...reportRoutes(ctx),
    ...exportRoutes(ctx),
  ];
}
