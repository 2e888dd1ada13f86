import { GatewayError, type GatewayErrorClasses, RequestRejectedError } from '../errors.ts';

/**
 * Liquido-specific errors, on top of the shared gateway hierarchy so billing code can branch
 * on the shared classes (RequestRejectedError, TimeoutError, ConnectionError) alone.
 */

/**
 * Liquido refused our credentials (token endpoint 400/401, or an API call still 401/403 after
 * one token refresh). Nothing was processed. The message never carries the secret or token.
 */
export class LiquidoAuthError extends RequestRejectedError {
  static override readonly type: string = 'LiquidoAuthError';
}

/** The operation exists on the Gateway interface but Liquido's card pre-authorization has none. */
export class UnsupportedOperationError extends GatewayError {
  static override readonly type: string = 'UnsupportedOperationError';
  constructor(
    readonly gateway: string,
    readonly operation: string,
  ) {
    super(`${gateway} does not support ${operation}`);
  }
}

/** Liquido's error answers: its API's 401 and 403 are our credentials, any other 4xx the request. */
export const LIQUIDO_ERRORS: GatewayErrorClasses = { credentials: LiquidoAuthError };
