import type { PaypalRefundOutcome } from '../../../src/billing/paypal/payments.ts';
import { parseMajor } from '../../../src/domain/money.ts';
import { api } from '../api.ts';
import { Badge, ConfirmAction, ErrorBox, Field, Loading, Table, useLoad } from '../components.tsx';
import { money, when } from '../format.ts';
import { filtersOf, href, submitFilters } from '../router.ts';
import type { PaypalPayment, PaypalPaymentDetail } from '../types.ts';
import { AmountInput } from './charges.tsx';

/**
 * PayPal payments tracked by their Worldpay events link: a page of their own, a table on the
 * mandate they were tracked on, and each payment's page (which asks Worldpay, as `show` does)
 * with the refund actions. The rules are the API's: a refused refund shows its sentence.
 */

function PaypalTable({ items, label }: { items: PaypalPayment[]; label: string }) {
  return (
    <Table
      label={label}
      head={['payment', 'customer', 'amount', 'last event', 'refunded', 'left', 'checked']}
      empty="No PayPal payments."
      rows={items.map((p) => [
        <a href={href(`/paypal/${p.id}`)}>PayPal #{p.id}</a>,
        p.customerRef ?? '—',
        money(p.amount, p.currency),
        <Badge value={p.lastEvent} />,
        money(p.refunded, p.currency),
        money(p.left, p.currency),
        when(p.checkedAt),
      ])}
    />
  );
}

/** Every tracked PayPal payment, newest first, of one customer if asked. */
export function PaypalPayments({ query }: { query: URLSearchParams }) {
  const f = filtersOf(query, ['customerRef']);
  const data = useLoad(JSON.stringify(f), () =>
    api.get<{ items: PaypalPayment[] }>('/v1/paypal-payments', { customerRef: f.customerRef }),
  );
  return (
    <section>
      <h1>PayPal payments</h1>
      <form
        class="filters"
        onSubmit={submitFilters('/paypal', ['customerRef'])}
        aria-label="Filter PayPal payments"
        key={JSON.stringify(f)}
      >
        <Field label="Customer">
          <input name="customerRef" defaultValue={f.customerRef} />
        </Field>
        <button type="submit">Filter</button>
      </form>
      <Loading state={data}>{({ items }) => <PaypalTable items={items} label="PayPal payments" />}</Loading>
    </section>
  );
}

/** The PayPal payments tracked on a mandate (its page shows them under its charges). */
export function MandatePaypal({ mandateId }: { mandateId: number }) {
  const data = useLoad(`paypal-${mandateId}`, () =>
    api.get<{ items: PaypalPayment[] }>('/v1/paypal-payments', { mandateId }),
  );
  return (
    <>
      <h2>PayPal payments</h2>
      <Loading state={data}>
        {({ items }) => <PaypalTable items={items} label={`PayPal payments of mandate ${mandateId}`} />}
      </Loading>
    </>
  );
}

/** One PayPal payment, Worldpay asked afresh: its last event, refunds, what is left; refund actions. */
export function PaypalPage({ id }: { id: number }) {
  const data = useLoad(`paypal-${id}`, () => api.get<PaypalPaymentDetail>(`/v1/paypal-payments/${id}`));
  return (
    <section>
      <p>
        <a href={href('/paypal')}>← PayPal payments</a>
      </p>
      <Loading state={data}>
        {(p) => (
          <>
            <h1>
              PayPal #{p.id} <Badge value={p.lastEvent} />
            </h1>
            {!p.asked.asked && <ErrorBox error={`Worldpay was not asked afresh: ${p.asked.reason}`} />}
            <dl class="facts">
              <dt>Customer</dt>
              <dd>{p.customerRef ?? '—'}</dd>
              <dt>Mandate</dt>
              <dd>{p.mandateId ? <a href={href(`/mandates/${p.mandateId}`)}>#{p.mandateId}</a> : '—'}</dd>
              <dt>Amount</dt>
              <dd>{money(p.amount, p.currency)}</dd>
              <dt>Refunded</dt>
              <dd>{money(p.refunded, p.currency)}</dd>
              <dt>In doubt</dt>
              <dd>{money(p.pending, p.currency)}</dd>
              <dt>Left</dt>
              <dd>{money(p.left, p.currency)}</dd>
              <dt>Checked</dt>
              <dd>{when(p.checkedAt)}</dd>
            </dl>
            <PaypalActions p={p} reload={data.reload} />
            <h2>Refunds</h2>
            <Table
              label="Refunds"
              head={['refund', 'reference', 'amount', 'state', 'error', 'at']}
              empty="No refunds."
              rows={p.refunds.map((r) => [
                r.kind,
                r.reference,
                money(r.amount, r.currency),
                <Badge value={r.state} />,
                r.error ?? '—',
                when(r.createdAt),
              ])}
            />
          </>
        )}
      </Loading>
    </section>
  );
}

function PaypalActions({ p, reload }: { p: PaypalPaymentDetail; reload: () => void }) {
  const post = (path: string, body: unknown = {}) => api.post(`/v1/paypal-payments/${p.id}/${path}`, body);
  const amountId = `pp-pr-${p.id}`;
  const amount = () =>
    parseMajor((document.getElementById(amountId) as HTMLInputElement).value, p.currency, 'amount');
  return (
    <div class="actions">
      <ConfirmAction
        label="Refund"
        danger
        question={`Refund what is left of PayPal payment #${p.id} (${money(p.left, p.currency)})? Worldpay is asked first.`}
        act={() => post('refund')}
        notice={`Refund of ${money(p.left, p.currency)} requested`}
        done={reload}
      />
      <ConfirmAction
        label="Partial refund"
        danger
        question={`Refund part of PayPal payment #${p.id} (${money(p.left, p.currency)} left).`}
        act={() => post('partial-refund', { amount: amount(), currency: p.currency })}
        notice={(r) => {
          const refund = r as PaypalRefundOutcome;
          return `${refund.outcome === 'accepted' ? 'Refund' : 'Refund (answer lost: rebill asks Worldpay before anything is resent)'} of ${money(refund.amount, refund.currency)} requested`;
        }}
        done={reload}
      >
        <AmountInput id={amountId} currency={p.currency} />
      </ConfirmAction>
    </div>
  );
}
