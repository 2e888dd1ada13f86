import { Fragment, type JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { PaymentEventsOutcome } from '../../../src/billing/operator/payment-events.ts';
import type { PaymentActionOutcome } from '../../../src/billing/operator/payments.ts';
import { type ChargeAction, chargeActions } from '../../../src/domain/charge-actions.ts';
import { chargeMachine } from '../../../src/domain/lifecycle.ts';
import { parseMajor } from '../../../src/domain/money.ts';
import { api } from '../api.ts';
import { Badge, ConfirmAction, Field, Loading, perform, Table, useLoad } from '../components.tsx';
import { dateToIso, money, when } from '../format.ts';
import { filtersOf, href, submitFilters } from '../router.ts';
import type { Charge, ChargeDetail, MandateDetail, Page } from '../types.ts';

/** The filter's choices: the charge table's states, and `dunning` (the states dunning holds). */
const FILTERS = ['q', 'state', 'code', 'dueFrom', 'dueTo'] as const;

export const CHARGE_STATES = ['dunning', ...Object.keys(chargeMachine.transitions)];

/** Charges by state, last refusal code and due date, a keyset page at a time. */
export function Charges({ query }: { query: URLSearchParams }) {
  const f = filtersOf(query, [...FILTERS, 'after']);

  const data = useLoad(JSON.stringify(f), () =>
    api.get<Page<Charge>>('/v1/charges', {
      q: f.q,
      state: f.state,
      code: f.code,
      dueFrom: f.dueFrom ? dateToIso(f.dueFrom) : undefined,
      dueTo: f.dueTo ? dateToIso(f.dueTo) : undefined,
      after: f.after,
      limit: 50,
    }),
  );
  const submit = submitFilters('/charges', FILTERS);
  return (
    <section>
      <h1>Charges</h1>
      <form class="filters" onSubmit={submit} aria-label="Filter charges" key={JSON.stringify(f)}>
        <Field label="Search">
          <input
            name="q"
            type="search"
            defaultValue={f.q}
            maxLength={128}
            placeholder="charge id, transaction reference or customer"
          />
        </Field>
        <Field label="State">
          <select name="state">
            <option value="">any</option>
            {CHARGE_STATES.map((s) => (
              <option key={s} value={s} selected={s === f.state}>
                {s.replaceAll('_', ' ')}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Refusal code">
          <input name="code" defaultValue={f.code} size={5} pattern="[A-Za-z0-9]{1,8}" />
        </Field>
        <Field label="Due from (UTC)">
          <input type="date" name="dueFrom" defaultValue={f.dueFrom} />
        </Field>
        <Field label="Due before (UTC)">
          <input type="date" name="dueTo" defaultValue={f.dueTo} />
        </Field>
        <button type="submit">Filter</button>
      </form>
      <Loading state={data}>
        {(page) => (
          <>
            <Table
              label="Charges"
              head={[
                'charge',
                'mandate',
                'customer',
                'cycle',
                'amount',
                'due',
                'state',
                'last code',
                'decision',
                'next attempt',
              ]}
              empty="No charges match."
              rows={page.items.map((c) => [
                <a href={href(`/charges/${c.id}`)}>#{c.id}</a>,
                <a href={href(`/mandates/${c.mandateId}`)}>#{c.mandateId}</a>,
                c.customerRef,
                c.kind === 'cycle' ? c.cycle : c.kind,
                money(c.amount, c.currency),
                when(c.dueAt),
                <Badge value={c.state} />,
                c.lastAttempt?.refusalCode ?? '—',
                c.lastAttempt?.decision ?? '—',
                c.state === 'retry_scheduled' ? when(c.nextAttemptAt) : '—',
              ])}
            />
            <nav class="pager" aria-label="Pages">
              {f.after && <a href={href('/charges', { ...f, after: undefined })}>First page</a>}
              {page.next !== null && <a href={href('/charges', { ...f, after: page.next })}>Next page</a>}
            </nav>
          </>
        )}
      </Loading>
    </section>
  );
}

/** One charge: its attempts with each dunning decision, payment actions, Worldpay events; actions. */
export function ChargePage({ id }: { id: number }) {
  const data = useLoad(`charge-${id}`, async () => {
    const c = await api.get<ChargeDetail>(`/v1/charges/${id}`);
    const m = await api.get<MandateDetail>(`/v1/mandates/${c.mandateId}`);
    return { c, m, attempts: m.charges.find((x) => x.id === id)?.attempts ?? [] };
  });
  return (
    <section>
      <p>
        <a href={href('/charges')}>← Charges</a>
      </p>
      <Loading state={data}>
        {({ c, m, attempts }) => (
          <>
            <h1>
              Charge #{c.id} <Badge value={c.state} />
            </h1>
            {c.stateReason && <p class="reason">{c.stateReason}</p>}
            <dl class="facts">
              <dt>Mandate</dt>
              <dd>
                <a href={href(`/mandates/${c.mandateId}`)}>#{c.mandateId}</a>
              </dd>
              <dt>Amount</dt>
              <dd>
                {money(c.amount, c.currency)}
                {c.creditApplied > 0 ? ` (after ${money(c.creditApplied, c.currency)} credit)` : ''}
              </dd>
              <dt>Due</dt>
              <dd>{when(c.dueAt)}</dd>
              <dt>Settled</dt>
              <dd>{money(c.settledAmount, c.currency)}</dd>
              <dt>Refunded</dt>
              <dd>{money(c.refundedAmount, c.currency)}</dd>
              <dt>Next attempt</dt>
              <dd>{c.state === 'retry_scheduled' ? when(c.nextAttemptAt) : '—'}</dd>
            </dl>
            <ChargeActions c={c} m={m} reload={data.reload} />
            <h2>Attempts</h2>
            <Table
              label="Attempts"
              head={['attempt', 'at', 'reference', 'state', 'code', 'advice', 'decision']}
              empty="No attempts yet."
              rows={attempts.map((a) => [
                a.no,
                when(a.attemptedAt),
                a.reference,
                <Badge value={a.state} />,
                a.refusalCode ?? '—',
                a.adviceCode ?? '—',
                a.decisionReason ?? a.decision ?? '—',
              ])}
            />
            <h2>Payment actions</h2>
            <Table
              label="Payment actions"
              head={['action', 'reference', 'amount', 'state', 'last event', 'error', 'at']}
              empty="No payment actions."
              rows={c.actions.map((a) => [
                a.kind,
                a.reference,
                money(a.amount, a.currency),
                <Badge value={a.state} />,
                a.lastEvent ?? '—',
                a.error ?? '—',
                when(a.createdAt),
              ])}
            />
            <h2>Disputes</h2>
            <Table
              label="Disputes"
              head={['dispute', 'status', 'amount', 'reason', 'disputed', 'charged back', 'policy']}
              empty="No disputes."
              rows={c.disputes.map((d) => [
                d.id,
                <Badge value={d.status} />,
                money(d.amount, d.currency),
                [d.reasonCode, d.reason].filter(Boolean).join(' · ') || '—',
                when(d.disputedAt),
                d.chargedBackAt ? when(d.chargedBackAt) : '—',
                d.policy === 'pause' ? "the card's mandates paused" : (d.policy ?? '—'),
              ])}
            />
            <h2>Worldpay events</h2>
            <Table
              label="Worldpay events"
              head={['event', 'source', 'id', 'received']}
              empty="No events received."
              rows={c.events.map((e) => [e.lastEvent, e.source, e.eventId ?? '—', when(e.receivedAt)])}
            />
          </>
        )}
      </Loading>
    </section>
  );
}

export function AmountInput({ id, currency }: { id: string; currency: string }) {
  return (
    <Field label={`Amount (${currency})`}>
      <input id={id} inputMode="decimal" required />
    </Field>
  );
}

/** "Refund of 10.00 GBP sent": what a payment action's answer says was asked of the gateway. */
function sent(what: string, r: unknown): string {
  const o = r as PaymentActionOutcome;
  const amount = o.amount === null ? '' : ` of ${money(o.amount, o.currency)}`;
  return o.outcome === 'unknown'
    ? `${what}${amount} sent; Worldpay's answer was lost: ask Worldpay before trying again`
    : `${what}${amount} sent`;
}

function ChargeActions({ c, m, reload }: { c: ChargeDetail; m: MandateDetail; reload: () => void }) {
  const post = (path: string, body: unknown = {}) => api.post(`/v1/charges/${c.id}/${path}`, body);
  const amountOf = (id: string) =>
    parseMajor((document.getElementById(id) as HTMLInputElement).value, c.currency, 'amount');
  const ref = money(c.amount, c.currency);
  const left = money(c.settledAmount - c.refundedAmount, c.currency);
  const offered = chargeActions(c, { status: m.status, credentialStatus: m.credential.status });
  // Retry is the state's own action but the mandate or its card holds it back: say what does.
  const held = chargeActions(c).includes('retryNow') && !offered.includes('retryNow');
  const buttons: Record<ChargeAction, () => JSX.Element> = {
    retryNow: () => (
      <ConfirmAction
        label="Retry now"
        question={`Retry charge #${c.id} (${ref}) now, if its scheme rules allow it?`}
        act={() => post('retry-now')}
        notice={`Charge ${c.id} retried`}
        done={reload}
      />
    ),
    settle: () => (
      <ConfirmAction
        label="Settle"
        question={`Settle the authorized ${ref}?`}
        act={() => post('settle')}
        notice={(r) => sent('Settlement', r)}
        done={reload}
      />
    ),
    partialSettle: () => (
      <ConfirmAction
        label="Partial settle"
        question={`Settle part of charge #${c.id}.`}
        act={() => post('partial-settle', { amount: amountOf(`ps-${c.id}`) })}
        notice={(r) => sent('Partial settlement', r)}
        done={reload}
      >
        <AmountInput id={`ps-${c.id}`} currency={c.currency} />
      </ConfirmAction>
    ),
    cancel: () => (
      <ConfirmAction
        label="Cancel"
        danger
        question={`Cancel the authorization of charge #${c.id}?`}
        act={() => post('cancel')}
        notice={(r) => sent('Cancellation', r)}
        done={reload}
      />
    ),
    refund: () => (
      <ConfirmAction
        label="Refund"
        danger
        question={`Refund the ${left} settled and not refunded of charge #${c.id}?`}
        act={() => post('refund')}
        notice={(r) => sent('Refund', r)}
        done={reload}
      />
    ),
    partialRefund: () => (
      <ConfirmAction
        label="Partial refund"
        danger
        question={`Refund part of charge #${c.id} (${left} left to refund).`}
        act={() => post('partial-refund', { amount: amountOf(`pr-${c.id}`) })}
        notice={(r) => sent('Partial refund', r)}
        done={reload}
      >
        <AmountInput id={`pr-${c.id}`} currency={c.currency} />
      </ConfirmAction>
    ),
    reversal: () => (
      <ConfirmAction
        label="Reverse"
        danger
        question={`Reverse charge #${c.id} (${ref}): Worldpay cancels or refunds it, as its state requires?`}
        act={() => post('reversal')}
        notice={(r) => sent('Reversal', r)}
        done={reload}
      />
    ),
  };
  return (
    <>
      {offered.length === 0 ? (
        <p class="actions-none">
          {held
            ? `Retry waits for mandate #${m.id}: it is ${m.status.replaceAll('_', ' ')} and its card ${m.credential.status}; attach a new card or resume it first.`
            : `No action applies to a ${c.state.replaceAll('_', ' ')} charge.`}
        </p>
      ) : (
        <div class="actions">
          {offered.map((a) => (
            <Fragment key={a}>{buttons[a]()}</Fragment>
          ))}
        </div>
      )}
      {c.lastAttempt?.state === 'authorized' && <AskWorldpay c={c} reload={reload} />}
    </>
  );
}

/** The payment's status at Worldpay, asked now and applied (POST /v1/charges/{id}/query). */
function AskWorldpay({ c, reload }: { c: ChargeDetail; reload: () => void }) {
  const [busy, setBusy] = useState(false);
  const ask = () =>
    perform(
      async () => {
        setBusy(true);
        try {
          return await api.post<PaymentEventsOutcome>(`/v1/charges/${c.id}/query`);
        } finally {
          setBusy(false);
        }
      },
      (r) =>
        r.found === true
          ? `Worldpay says charge ${c.id}'s payment is ${r.status}${r.applied ? `; the charge is now ${r.applied.replaceAll('_', ' ')}` : ''}`
          : r.found === false
            ? `Worldpay does not know charge ${c.id}'s payment`
            : `Worldpay did not answer about charge ${c.id}: try again later`,
      reload,
    );
  return (
    <div class="queries">
      <button type="button" onClick={ask} disabled={busy}>
        Ask Worldpay
      </button>
    </div>
  );
}
