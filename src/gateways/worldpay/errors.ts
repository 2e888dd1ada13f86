import { RequestRejectedError } from '../errors.ts';

/** Worldpay answered 4xx: its `errorName` and `validationErrors` say what to fix. */
export class WorldpayRequestError extends RequestRejectedError {
  static override readonly type: string = 'WorldpayRequestError';
}
