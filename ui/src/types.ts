/**
 * The admin API's answers, typed by the server's own view types (type-only imports: nothing of
 * the server is bundled), so the console cannot drift from what the API returns.
 */

export type { ActivityItem } from '../../src/billing/mandates/activity.ts';
export type { ChangeView as Change } from '../../src/billing/mandates/changes.ts';
export type { Forecast as ForecastAnswer } from '../../src/billing/mandates/forecast.ts';
export type { MandateDetail, MandateView as Mandate } from '../../src/billing/mandates/views.ts';
export type { ChargeDetail, ChargeView as Charge } from '../../src/billing/operator/charges.ts';
export type { PaypalPaymentView as PaypalPayment } from '../../src/billing/paypal/views.ts';
export type {
  DailyRow,
  RecoveryReport as Recovery,
  SummaryReport as Summary,
} from '../../src/billing/reporting/reports.ts';
export type { RunView as Run } from '../../src/billing/reporting/runs.ts';
export type { DeliveryView as Delivery, EndpointView as Endpoint } from '../../src/events/endpoints.ts';
export type { EventView as EventItem } from '../../src/events/sequence.ts';

import type { PaypalAsked } from '../../src/billing/paypal/payments.ts';
import type { PaypalPaymentDetail as Stored } from '../../src/billing/paypal/views.ts';
import type { DailyRow } from '../../src/billing/reporting/reports.ts';

/** `GET /v1/paypal-payments/{id}`: the payment after Worldpay was asked. */
export type PaypalPaymentDetail = Stored & { asked: PaypalAsked };

/** A keyset page, as every list route answers. */
export interface Page<T> {
  items: T[];
  next: number | null;
}

export interface Daily {
  days: DailyRow[];
}
