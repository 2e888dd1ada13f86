import { cycleLabel } from '../../../src/domain/labels.ts';
import { canMove, type MandateStatus, mandateMachine } from '../../../src/domain/lifecycle.ts';
import { parseMajor } from '../../../src/domain/money.ts';
import { api, currentSession } from '../api.ts';
import { Badge, ConfirmAction, Field, Loading, Table, useLoad } from '../components.tsx';
import { addDays, money, when } from '../format.ts';
import { filtersOf, href, submitFilters } from '../router.ts';
import type { Change, ForecastAnswer, Mandate, MandateDetail, Page } from '../types.ts';
import { MandatePaypal } from './paypal.tsx';

/** The filter's choices: the mandate table's states. */
const FILTERS = ['status', 'intent', 'customer', 'gateway'] as const;

export const MANDATE_STATUSES = Object.keys(mandateMachine.transitions);

/** Mandates, filtered by status, intent, customer and gateway, a keyset page at a time. */
export function Mandates({ query }: { query: URLSearchParams }) {
  const f = filtersOf(query, [...FILTERS, 'after']);

  const data = useLoad(JSON.stringify(f), () => api.get<Page<Mandate>>('/v1/mandates', { ...f, limit: 50 }));
  const submit = submitFilters('/mandates', FILTERS);
  return (
    <section>
      <h1>Mandates</h1>
      <form class="filters" onSubmit={submit} aria-label="Filter mandates" key={JSON.stringify(f)}>
        <Field label="Status">
          <select name="status">
            <option value="">any</option>
            {MANDATE_STATUSES.map((s) => (
              <option key={s} value={s} selected={s === f.status}>
                {s}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Intent">
          <select name="intent">
            <option value="">any</option>
            <option value="subscription" selected={f.intent === 'subscription'}>
              subscription
            </option>
            <option value="instalment" selected={f.intent === 'instalment'}>
              instalment
            </option>
            <option value="unscheduled" selected={f.intent === 'unscheduled'}>
              unscheduled
            </option>
          </select>
        </Field>
        <Field label="Customer">
          <input name="customer" defaultValue={f.customer} maxLength={128} />
        </Field>
        <Field label="Gateway">
          <select name="gateway">
            <option value="">any</option>
            <option value="worldpay" selected={f.gateway === 'worldpay'}>
              worldpay
            </option>
            <option value="liquido" selected={f.gateway === 'liquido'}>
              liquido
            </option>
          </select>
        </Field>
        <button type="submit">Filter</button>
      </form>
      <Loading state={data}>
        {(page) => (
          <>
            <Table
              label="Mandates"
              head={['mandate', 'customer', 'intent', 'amount', 'interval', 'status', 'next due', 'gateway']}
              empty="No mandates match."
              rows={page.items.map((m) => [
                <a href={href(`/mandates/${m.id}`)}>#{m.id}</a>,
                m.customerRef,
                m.intent,
                money(m.amount, m.currency),
                m.interval ?? '—',
                <Badge value={m.status} />,
                when(m.nextDueAt),
                m.gateway,
              ])}
            />
            <nav class="pager" aria-label="Pages">
              {f.after && <a href={href('/mandates', { ...f, after: undefined })}>First page</a>}
              {page.next !== null && <a href={href('/mandates', { ...f, after: page.next })}>Next page</a>}
            </nav>
          </>
        )}
      </Loading>
    </section>
  );
}

/** One mandate: what it is, what comes next, its link chain, charges and changes; and its actions. */
export function MandatePage({ id }: { id: number }) {
  const now = currentSession()?.serverTime ?? new Date().toISOString();
  const data = useLoad(`mandate-${id}`, async () => {
    const [m, changes, next] = await Promise.all([
      api.get<MandateDetail>(`/v1/mandates/${id}`),
      api.get<{ items: Change[] }>(`/v1/mandates/${id}/changes`),
      api.get<ForecastAnswer>('/v1/forecast', { from: now, to: addDays(now, 366), mandateId: id }),
    ]);
    return { m, changes: changes.items, next: next.items.slice(0, 6) };
  });
  return (
    <section>
      <p>
        <a href={href('/mandates')}>← Mandates</a>
      </p>
      <Loading state={data}>
        {({ m, changes, next }) => (
          <>
            <h1>
              Mandate #{m.id} <Badge value={m.status} />
            </h1>
            {m.statusReason && <p class="reason">{m.statusReason}</p>}
            <dl class="facts">
              <dt>Customer</dt>
              <dd>{m.customerRef}</dd>
              <dt>Intent</dt>
              <dd>{m.intent}</dd>
              <dt>Amount</dt>
              <dd>
                {money(m.amount, m.currency)}
                {m.interval ? ` every ${m.interval}` : ''}
              </dd>
              <dt>Narrative</dt>
              <dd>{m.narrative}</dd>
              <dt>Started</dt>
              <dd>{when(m.startAt)}</dd>
              <dt>Ends</dt>
              <dd>{m.cancelAtPeriodEnd ? 'at the end of this period' : when(m.endAt)}</dd>
              <dt>Next due</dt>
              <dd>{when(m.nextDueAt)}</dd>
              <dt>Credit</dt>
              <dd>{money(m.creditBalance, m.currency)}</dd>
              <dt>Card</dt>
              <dd>
                {m.credential.instrumentType}
                {m.credential.brand ? ` ${m.credential.brand}` : ''}
                {m.credential.lastFour ? ` •••• ${m.credential.lastFour}` : ''}
                {m.credential.expiry ? ` exp ${m.credential.expiry}` : ''}{' '}
                <Badge value={m.credential.status} />
              </dd>
              <dt>Gateway</dt>
              <dd>{m.gateway}</dd>
            </dl>
            <MandateActions m={m} reload={data.reload} />
            <h2>Next cycles</h2>
            <Table
              label="Next cycles"
              head={['due', 'cycle', 'amount', 'credit applied']}
              empty="Nothing planned."
              rows={next.map((c) => [
                when(c.dueAt),
                c.cycle ?? c.kind,
                money(c.amount, c.currency),
                money(c.creditApplied, c.currency),
              ])}
            />
            <h2>Scheduled changes</h2>
            <Table
              label="Changes"
              head={['change', 'effective', 'what', 'proration', 'state', '']}
              empty="No changes."
              rows={changes.map((c) => [
                `#${c.id}`,
                when(c.effectiveAt),
                Object.entries(c.changes)
                  .map(([k, v]) => `${k}: ${k === 'amount' ? money(Number(v), m.currency) : String(v)}`)
                  .join(', '),
                c.proration,
                <Badge value={c.state} />,
                c.state === 'scheduled' ? (
                  <ConfirmAction
                    label="Cancel change"
                    question={`Cancel scheduled change #${c.id}?`}
                    act={() => api.del(`/v1/mandates/${m.id}/changes/${c.id}`)}
                    done={data.reload}
                  />
                ) : null,
              ])}
            />
            <h2>Link chain</h2>
            <ol class="timeline" aria-label="Link chain">
              {m.links.map((l) => (
                <li key={l.id} class={l.current ? 'current' : ''}>
                  <strong>link #{l.id}</strong> from {l.source} · {when(l.createdAt)}
                  {l.current ? ' · current' : ''}
                </li>
              ))}
            </ol>
            <h2>Charges</h2>
            {m.charges.length === 0 && <p class="muted">No charges yet.</p>}
            {m.charges.map((c) => (
              <article class="charge" key={c.id} aria-label={`Charge ${c.id}`}>
                <h3>
                  <a href={href(`/charges/${c.id}`)}>Charge #{c.id}</a> ·{' '}
                  {cycleLabel(c) === 'proration' ? 'proration' : `cycle ${c.cycle}`} ·{' '}
                  {money(c.amount, c.currency)} · due {when(c.dueAt)} <Badge value={c.state} />
                </h3>
                {c.stateReason && <p class="reason">{c.stateReason}</p>}
                <Table
                  label={`Attempts of charge ${c.id}`}
                  head={['attempt', 'at', 'state', 'code', 'advice', 'decision']}
                  empty="No attempts yet."
                  rows={c.attempts.map((a) => [
                    a.no,
                    when(a.attemptedAt),
                    <Badge value={a.state} />,
                    a.refusalCode ?? '—',
                    a.adviceCode ?? '—',
                    a.decisionReason ?? a.decision ?? '—',
                  ])}
                />
              </article>
            ))}
            <MandatePaypal mandateId={m.id} />
          </>
        )}
      </Loading>
    </section>
  );
}

function MandateActions({ m, reload }: { m: MandateDetail; reload: () => void }) {
  // The moves the server's door allows: the same table (canMove), so the buttons cannot drift.
  const status = m.status as MandateStatus;
  const may = (to: MandateStatus) => canMove(mandateMachine, status, to);
  const open = may('cancelled');
  return (
    <div class="actions">
      {may('paused') && (
        <ConfirmAction
          label="Pause"
          question={`Pause mandate #${m.id}? Nothing is charged while it is paused.`}
          act={() => api.post(`/v1/mandates/${m.id}/pause`)}
          done={reload}
        />
      )}
      {may('active') && (
        <ConfirmAction
          label="Resume"
          question={`Resume mandate #${m.id}? Cycles missed while paused are skipped.`}
          act={() => api.post(`/v1/mandates/${m.id}/resume`)}
          done={reload}
        />
      )}
      {open && (
        <ConfirmAction
          label="Cancel now"
          danger
          question={`Cancel mandate #${m.id} now? Waiting charges are cancelled; this cannot be undone.`}
          act={() => api.post(`/v1/mandates/${m.id}/cancel`, { atPeriodEnd: false })}
          done={reload}
        />
      )}
      {open && !m.cancelAtPeriodEnd && m.intent !== 'unscheduled' && (
        <ConfirmAction
          label="Cancel at period end"
          question={`Cancel mandate #${m.id} at the end of the current period?`}
          act={() => api.post(`/v1/mandates/${m.id}/cancel`, { atPeriodEnd: true })}
          done={reload}
        />
      )}
      {open && (
        <ConfirmAction
          label="Update"
          question={`Change mandate #${m.id}. Leave a field empty to keep it.`}
          confirm="Save change"
          act={async () => {
            const form = document.getElementById(`update-${m.id}`) as HTMLFieldSetElement;
            const v = (n: string) =>
              (form.querySelector(`[name=${n}]`) as HTMLInputElement | HTMLSelectElement).value.trim();
            const body: Record<string, unknown> = {};
            if (v('amount')) body.amount = parseMajor(v('amount'), m.currency, 'amount');
            if (v('interval')) body.interval = v('interval');
            if (v('narrative')) body.narrative = v('narrative');
            body.effective = v('effective');
            body.proration = v('proration');
            return api.patch(`/v1/mandates/${m.id}`, body);
          }}
          done={reload}
        >
          <fieldset id={`update-${m.id}`} class="stack">
            <Field label={`Amount (${m.currency}, now ${money(m.amount, m.currency)})`}>
              <input name="amount" inputMode="decimal" />
            </Field>
            <Field label={`Interval (now ${m.interval ?? 'none'})`}>
              <input name="interval" placeholder="1 month" />
            </Field>
            <Field label="Narrative">
              <input name="narrative" maxLength={24} />
            </Field>
            <Field label="Effective">
              <select name="effective">
                <option value="next_cycle">next cycle</option>
                <option value="now">now</option>
              </select>
            </Field>
            <Field label="Proration">
              <select name="proration">
                <option value="none">none</option>
                <option value="charge">charge the difference</option>
                <option value="credit">credit the difference</option>
              </select>
            </Field>
          </fieldset>
        </ConfirmAction>
      )}
      {open && (
        <ConfirmAction
          label="Attach credential link"
          question="Attach a new recurring link (from a customer's new verification) to this mandate."
          confirm="Attach"
          act={async () => {
            const input = document.getElementById(`link-${m.id}`) as HTMLInputElement;
            return api.post(`/v1/mandates/${m.id}/credential`, { link: input.value.trim() });
          }}
          done={reload}
        >
          <Field label="Link (payments:recurringAuthorize href)">
            <input id={`link-${m.id}`} type="url" required />
          </Field>
        </ConfirmAction>
      )}
    </div>
  );
}
