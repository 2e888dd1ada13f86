export { LiquidoAuthError, UnsupportedOperationError } from './errors.ts';
export { liquidoGatewayFromConfig } from './fromConfig.ts';
export { CaptureExceedsHoldError, createLiquidoGateway, type LiquidoGatewayOptions } from './gateway.ts';
export { TokenUnavailableError } from './tokenSource.ts';
export { LIQUIDO_RELS, type LiquidoPayment, normaliseStatus } from './wire.ts';
