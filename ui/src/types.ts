/**
 * The admin API's answers, typed by the server's own view types (type-only imports: nothing of
 * the server is bundled), so the console cannot drift from what the API returns.
 */
export type { ChargeDetail, ChargeView as Charge } from '../../src/billing/charges.ts';
export type { Forecast as ForecastAnswer } from '../../src/billing/forecast.ts';
export type { ChangeView as Change } from '../../src/billing/mandate-changes.ts';
export type { MandateDetail, MandateView as Mandate } from '../../src/billing/mandate-views.ts';
export type {
  DailyRow,
  RecoveryReport as Recovery,
  SummaryReport as Summary,
} from '../../src/billing/reports.ts';
export type { RunView as Run } from '../../src/billing/runs.ts';
export type { DeliveryView as Delivery, EndpointView as Endpoint } from '../../src/events/endpoints.ts';
export type { EventView as EventItem } from '../../src/events/sequence.ts';

import type { DailyRow } from '../../src/billing/reports.ts';

/** A keyset page, as every list route answers. */
export interface Page<T> {
  items: T[];
  next: number | null;
}

export interface Daily {
  days: DailyRow[];
}
