export {
  LIQUIDO_SANDBOX_DEFAULTS,
  type LiquidoSandboxOptions,
  type LiquidoSandboxPlugin,
  liquidoSandbox,
} from './plugin.ts';
export { type LiquidoSandbox, startLiquidoSandbox } from './start.ts';
export type * from './types.ts';
