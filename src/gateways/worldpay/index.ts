export { WorldpayRequestError } from './errors.ts';
export { worldpayGatewayFromConfig } from './fromConfig.ts';
export {
  createWorldpayGateway,
  type WorldpayAuthorizeRequest,
  type WorldpayCredential,
  type WorldpayGateway,
  type WorldpayGatewayOptions,
} from './gateway.ts';
export { parseLinks, parseRefusal } from './responses.ts';
export { normalisePaymentStatus } from './status.ts';
