import Fastify from 'fastify';
import { type LiquidoSandboxOptions, liquidoSandbox } from './plugin.ts';
import type { LiquidoLedger, LiquidoScriptRule } from './types.ts';

export interface LiquidoSandbox {
  url: string;
  close(): Promise<void>;
  ledger(): LiquidoLedger;
  script(rule: LiquidoScriptRule): void;
  /** Every token issued so far is refused from now on (as if its expiry had passed). */
  expireTokens(): void;
  /** Vaults a card and returns its cardId (same as POST /_sandbox/liquido/cards). */
  addCard(input?: { cardHolderName?: string; last4?: string }): string;
}

/** A server with only the Liquido routes, on 127.0.0.1 (port 0 unless given). */
export async function startLiquidoSandbox(
  opts: LiquidoSandboxOptions & { port?: number } = {},
): Promise<LiquidoSandbox> {
  const plugin = liquidoSandbox(opts);
  const app = Fastify({ logger: false, keepAliveTimeout: 30_000 });
  await app.register(async (child) => {
    await plugin(child);
  });
  await app.listen({ port: opts.port ?? 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : opts.port;
  let closed = false;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
    },
    ledger: () => plugin.state.ledger(),
    script: (rule) => plugin.state.script(rule),
    expireTokens: () => plugin.state.expireTokens(),
    addCard: (input = {}) => plugin.state.addCard(input).cardId,
  };
}
