import { type ExchangeDetails, RequestRejectedError, type ValidationErrorDetail } from '../errors.ts';

/** Worldpay answered 4xx: its `errorName` and `validationErrors` say what to fix. */
export class WorldpayRequestError extends RequestRejectedError {
  override name = 'WorldpayRequestError';

  constructor(
    message: string,
    details: ExchangeDetails & {
      status: number;
      errorName?: string | undefined;
      validationErrors?: ValidationErrorDetail[] | undefined;
    },
  ) {
    super(message, details);
  }
}
