import type { Chain } from './chains.js';
import type { LedgerDraft } from './ledger.js';
import { ACTION_PATH } from './paymentMachine.js';
import { magicNameOutcome, refusalDescription } from './refusals.js';
import {
  curies,
  digits,
  duplicateReference,
  errorReply,
  href,
  notFound,
  REFUSED_RISK_FACTORS,
  RISK_FACTORS,
  type SandboxReply,
  schemaError,
} from './replies.js';
import { unwrap } from './scripts.js';
import type { SandboxStores } from './stores.js';
import type { Outcome } from './types.js';
import {
  type AuthorizationRequest,
  MIGRATE_INSTRUMENTS,
  RECURRING_INSTRUMENTS,
  validateAuthorization,
} from './validateBody.js';

/**
 * A recurring authorization (on a chain's link) or a migrateRecurring (which starts or finds the
 * card's chain): validated, checked for a duplicate reference, then answered as scripted, as the
 * holder's magic name says, or authorized.
 */
export function authorize(
  stores: SandboxStores,
  base: string,
  op: 'authorize' | 'migrate',
  body: unknown,
  linkData: string | undefined,
): SandboxReply {
  const { chains, payments, scripts, ledger } = stores;
  let chain: Chain | undefined;
  let stale = false;
  if (op === 'authorize') {
    const link = chains.byLink(linkData!);
    if (!link) return notFound();
    chain = link.chain;
    stale = link.stale;
  }
  const checked = validateAuthorization(
    body,
    op === 'migrate' ? MIGRATE_INSTRUMENTS : RECURRING_INSTRUMENTS,
    { instrumentOptional: op === 'authorize' },
  );
  if (!checked.ok) {
    ledger.record({ op, chainId: chain?.id, linkUsed: linkData, outcome: 'rejected', httpStatus: 400 });
    return schemaError(checked.errors);
  }
  const req = checked.request;
  const base_entry = {
    op,
    transactionReference: req.transactionReference,
    linkUsed: linkData,
    amount: req.amount,
    currency: req.currency,
  };
  if (payments.byReference(req.entity, req.transactionReference)) {
    ledger.countDuplicateReference();
    ledger.record({ ...base_entry, chainId: chain?.id, outcome: 'duplicate', httpStatus: 400 });
    return duplicateReference();
  }
  if (op === 'migrate') {
    chain = (req.cardKey && chains.byCard(req.cardKey)) || chains.create(req.cardKey, req.cardHolderName);
    if (req.cardHolderName !== undefined) chain.holderName = req.cardHolderName;
  }
  const holderName = req.cardHolderName ?? chain!.holderName;
  const scripted = unwrap(scripts.next('authorize', req.transactionReference, chain!.id));
  const decided = scripted.outcome ?? magicNameOutcome(holderName) ?? { type: 'authorize' as const };
  if (decided.type === 'error') {
    ledger.record({ ...base_entry, chainId: chain!.id, stale, outcome: 'error', httpStatus: decided.status });
    return { ...errorReply(decided), delayMs: scripted.delayMs };
  }
  if (stale) ledger.countStaleLinkUse();
  const lost = decided.type === 'lost';
  const reply =
    decided.type === 'refuse'
      ? commitRefusal(stores, req, chain!, decided, base_entry, stale, lost)
      : commitAuthorization(stores, base, req, chain!, base_entry, stale, lost);
  reply.delayMs = scripted.delayMs;
  reply.lost = lost;
  return reply;
}

function commitAuthorization(
  { chains, payments, ledger }: SandboxStores,
  base: string,
  req: AuthorizationRequest,
  chain: Chain,
  entry: LedgerDraft,
  stale: boolean,
  lost: boolean,
): SandboxReply {
  const p = payments.open(req, chain, 'authorized');
  const next = chains.rotate(chain);
  ledger.record({
    ...entry,
    paymentId: p.id,
    chainId: chain.id,
    stale,
    outcome: 'authorized',
    httpStatus: 201,
    responseLost: lost || undefined,
  });
  const links: Record<string, unknown> = {
    'payments:cancel': href(base, ACTION_PATH['payments:cancel'] + p.linkData),
    'payments:settle': href(base, ACTION_PATH['payments:settle'] + p.linkData),
    'payments:partialSettle': href(base, ACTION_PATH['payments:partialSettle'] + p.linkData),
    'payments:events': href(base, ACTION_PATH['payments:events'] + p.linkData),
    curies: curies(base),
    'payments:recurringAuthorize': href(base, '/payments/authorizations/recurring/' + next),
  };
  const body: Record<string, unknown> = {
    outcome: 'authorized',
    riskFactors: RISK_FACTORS,
    issuer: { authorizationCode: digits(6) },
    scheme: { reference: digits(10) },
  };
  if (req.instrumentType === 'card/networkToken+applepay') {
    body.paymentInstrument = {
      type: 'card/network',
      card: {
        paymentAccountReference: `Q1HJZ28RKA1EBL470G9${chain.id.toUpperCase().replace(/[^A-Z0-9]/g, '')}`,
      },
    };
  }
  body._links = links;
  return { status: 201, body };
}

function commitRefusal(
  { payments, ledger }: SandboxStores,
  req: AuthorizationRequest,
  chain: Chain,
  outcome: Extract<Outcome, { type: 'refuse' }>,
  entry: LedgerDraft,
  stale: boolean,
  lost: boolean,
): SandboxReply {
  const p = payments.open(req, chain, 'refused');
  ledger.record({
    ...entry,
    paymentId: p.id,
    chainId: chain.id,
    stale,
    outcome: 'refused',
    code: outcome.code,
    httpStatus: 201,
    responseLost: lost || undefined,
  });
  const description = outcome.description ?? refusalDescription(outcome.code);
  const body: Record<string, unknown> =
    outcome.spelling === 'v7'
      ? { outcome: 'refused', refusalDescription: description, refusalCode: outcome.code }
      : { outcome: 'refused', description, code: outcome.code };
  if (outcome.adviceCode !== undefined) {
    body[outcome.spelling === 'v7' ? 'advice' : 'refusalAdvice'] = { code: outcome.adviceCode };
  }
  body.riskFactors = REFUSED_RISK_FACTORS;
  return { status: 201, body };
}
