import { useState } from 'preact/hooks';
import type { UpdateResult } from '../../../src/billing/mandates/changes.ts';
import { cycleLabel } from '../../../src/domain/labels.ts';
import { canMove, type MandateStatus, mandateMachine } from '../../../src/domain/lifecycle.ts';
import { parseMajor } from '../../../src/domain/money.ts';
import { api, currentSession } from '../api.ts';
import { Badge, ConfirmAction, Field, Loading, perform, Table, useLoad } from '../components.tsx';
import { addDays, money, when, zoned } from '../format.ts';
import { filtersOf, href, navigate, submitFilters } from '../router.ts';
import type { ActivityItem, Change, ForecastAnswer, Mandate, MandateDetail, Page } from '../types.ts';
import { MandatePaypal } from './paypal.tsx';

/** The filter's choices: the mandate table's states. */
const FILTERS = ['q', 'status', 'intent', 'customerRef', 'gateway'] as const;

export const MANDATE_STATUSES = Object.keys(mandateMachine.transitions);

/** Mandates, searched, filtered by status, intent, customer ref prefix and gateway, a keyset page at a time. */
export function Mandates({ query }: { query: URLSearchParams }) {
  const f = filtersOf(query, [...FILTERS, 'after']);

  const data = useLoad(JSON.stringify(f), () => api.get<Page<Mandate>>('/v1/mandates', { ...f, limit: 50 }));
  const submit = submitFilters('/mandates', FILTERS);
  return (
    <section>
      <h1>Mandates</h1>
      <NewMandate />
      <form class="filters" onSubmit={submit} aria-label="Filter mandates" key={JSON.stringify(f)}>
        <Field label="Search">
          <input
            name="q"
            type="search"
            defaultValue={f.q}
            maxLength={128}
            placeholder="mandate id, transaction reference or customer"
          />
        </Field>
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
        <Field label="Customer starts with">
          <input name="customerRef" defaultValue={f.customerRef} maxLength={128} />
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

/** When a mandate ends, in words: a plan with its last instalment, a scheduled cancel, an end date, or never. */
function endsOf(m: MandateDetail): string {
  if (m.status === 'cancelled' || m.status === 'completed') return `${m.status} (${when(m.endAt)})`;
  if (m.cancelAtPeriodEnd) return 'at the end of this period (cancel scheduled)';
  if (m.instalmentsTotal !== null) return `with instalment ${m.instalmentsTotal} of ${m.instalmentsTotal}`;
  if (m.endAt) return zoned(m.endAt, m.timezone);
  return m.intent === 'unscheduled' ? 'never: charged when asked' : 'never: renews until cancelled';
}

/** The next due date, only where something will be charged then. */
function nextDueOf(m: MandateDetail): string {
  if (m.status === 'paused') return 'nothing while paused';
  if (m.cancelAtPeriodEnd) return 'nothing: cancels at the end of this period';
  if (m.status === 'cancelled' || m.status === 'completed') return 'nothing: it has ended';
  if (m.intent === 'unscheduled') return 'when a charge is asked for';
  return zoned(m.nextDueAt, m.timezone);
}

/** The charge states an instalment counts as paid in: authorized, and everything after. */
const PAID = ['authorized', 'settling', 'settled', 'settle_failed', 'partially_refunded', 'refunded'];

/** An instalment plan's progress: "2 of 6 paid", the plan's total and what is left of it. */
function InstalmentProgress({ m }: { m: MandateDetail }) {
  const n = m.instalmentsTotal!;
  const total = m.amount * (n - 1) + (m.lastInstalmentAmount ?? m.amount);
  const paid = m.charges.filter((c) => c.cycle >= 0 && PAID.includes(c.state));
  const paidAmount = paid.reduce((a, c) => a + c.amount, 0);
  return (
    <>
      <dt>Instalments</dt>
      <dd>
        {paid.length} of {n} paid
      </dd>
      <dt>Plan total</dt>
      <dd>
        {money(total, m.currency)}
        {m.lastInstalmentAmount !== null && m.lastInstalmentAmount !== m.amount
          ? ` (the last instalment ${money(m.lastInstalmentAmount, m.currency)})`
          : ''}
      </dd>
      <dt>Left to pay</dt>
      <dd>{money(total - paidAmount, m.currency)}</dd>
    </>
  );
}

/** The value of a form's named field, trimmed ('' when absent). */
const fieldOf = (d: FormData, name: string) => String(d.get(name) ?? '').trim();

/** POST /v1/mandates from a form: the fields `rebill mandates create` takes, a recurring link as the card. */
function NewMandate() {
  const [busy, setBusy] = useState(false);
  const create = async (e: Event) => {
    e.preventDefault();
    const d = new FormData(e.target as HTMLFormElement);
    const v = (n: string) => fieldOf(d, n);
    setBusy(true);
    await perform(
      () => {
        const currency = v('currency').toUpperCase();
        const body: Record<string, unknown> = {
          customerRef: v('customerRef'),
          intent: v('intent'),
          currency,
          narrative: v('narrative'),
          timezone: v('timezone') || 'UTC',
          credential: { link: v('link') },
        };
        if (v('amount')) body.amount = parseMajor(v('amount'), currency, 'amount');
        if (v('interval')) body.interval = v('interval');
        if (v('instalments')) body.instalments = Number(v('instalments'));
        if (v('start')) body.start = v('start');
        return api.post<Mandate>('/v1/mandates', body);
      },
      (m) => `Mandate ${m.id} created`,
      (m) => navigate(href(`/mandates/${m.id}`)),
    );
    setBusy(false);
  };
  return (
    <details class="create">
      <summary>New mandate</summary>
      <form class="stack" onSubmit={create} aria-label="New mandate">
        <Field label="Customer reference">
          <input name="customerRef" required maxLength={128} />
        </Field>
        <Field label="Intent">
          <select name="intent">
            <option value="subscription">subscription</option>
            <option value="instalment">instalment</option>
            <option value="unscheduled">unscheduled</option>
          </select>
        </Field>
        <Field label="Amount per charge">
          <input name="amount" inputMode="decimal" placeholder="29.99" />
        </Field>
        <Field label="Currency">
          <input name="currency" required pattern="[A-Za-z]{3}" size={4} defaultValue="GBP" />
        </Field>
        <Field label="Narrative (on the statement)">
          <input name="narrative" required maxLength={24} />
        </Field>
        <Field label="Interval (subscription, instalment)">
          <input name="interval" placeholder="1 month" />
        </Field>
        <Field label="Instalments">
          <input name="instalments" type="number" min={1} max={1000} />
        </Field>
        <Field label="Start (in the time zone below; empty: now)">
          <input name="start" type="date" />
        </Field>
        <Field label="Time zone">
          <input name="timezone" placeholder="UTC" defaultValue="UTC" />
        </Field>
        <Field label="Recurring link (payments:recurringAuthorize href)">
          <input name="link" type="url" required />
        </Field>
        <button type="submit" class="primary" disabled={busy}>
          Create mandate
        </button>
      </form>
    </details>
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
              <dt>Time zone</dt>
              <dd>{m.timezone}</dd>
              <dt>Started</dt>
              <dd>{zoned(m.startAt, m.timezone)}</dd>
              {m.instalmentsTotal !== null && <InstalmentProgress m={m} />}
              <dt>Ends</dt>
              <dd>{endsOf(m)}</dd>
              <dt>Next due</dt>
              <dd>{nextDueOf(m)}</dd>
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
              <dd>{gatewayLine(m)}</dd>
            </dl>
            <MandateActions m={m} reload={data.reload} />
            <h2>Next cycles</h2>
            <Table
              label="Next cycles"
              head={['due', 'cycle', 'amount', 'credit applied']}
              empty="Nothing planned."
              rows={next.map((c) => [
                zoned(c.dueAt, m.timezone),
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
                    notice={`Change ${c.id} of mandate ${m.id} cancelled`}
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
            <Activity id={m.id} />
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

/** What each audit entity is called on the page. */
const ENTITY: Record<string, string> = {
  mandate: 'mandate',
  charge: 'charge',
  attempt: 'attempt',
  payment_action: 'payment action',
  mandate_change: 'change',
  credential: 'card',
};

/** The mandate's activity from the audit trail, newest first (GET /v1/mandates/{id}/activity). */
function Activity({ id }: { id: number }) {
  const [before, setBefore] = useState<number | null>(null);
  const data = useLoad(`activity-${id}-${before}`, () =>
    api.get<{ items: ActivityItem[]; next: number | null }>(`/v1/mandates/${id}/activity`, {
      limit: 50,
      before,
    }),
  );
  return (
    <>
      <h2>Activity</h2>
      <Loading state={data}>
        {(page) => (
          <>
            {page.items.length === 0 && <p class="muted">No activity yet.</p>}
            <ol class="timeline activity" aria-label="Activity">
              {page.items.map((a) => (
                <li key={a.id}>
                  <time dateTime={a.at}>{when(a.at)}</time> · {ENTITY[a.entity] ?? a.entity} #{a.entityId}:{' '}
                  {a.from === null
                    ? `created ${a.to.replaceAll('_', ' ')}`
                    : a.from === a.to
                      ? 'changed'
                      : `${a.from.replaceAll('_', ' ')} → ${a.to.replaceAll('_', ' ')}`}
                  {a.reason ? ` · ${a.reason}` : ''} · by {a.actor}
                  {a.runId ? ` (run #${a.runId})` : ''}
                </li>
              ))}
            </ol>
            <nav class="pager" aria-label="Activity pages">
              {before !== null && (
                <button type="button" onClick={() => setBefore(null)}>
                  Newest
                </button>
              )}
              {page.next !== null && (
                <button type="button" onClick={() => setBefore(page.next)}>
                  Older
                </button>
              )}
            </nav>
          </>
        )}
      </Loading>
    </>
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
          notice={`Mandate ${m.id} paused`}
          done={reload}
        />
      )}
      {may('active') && (
        <ConfirmAction
          label="Resume"
          question={`Resume mandate #${m.id}? Cycles missed while paused are skipped.`}
          act={() => api.post(`/v1/mandates/${m.id}/resume`)}
          notice={`Mandate ${m.id} resumed`}
          done={reload}
        />
      )}
      {open && (
        <ConfirmAction
          label="Cancel now"
          danger
          question={`Cancel mandate #${m.id} now? Waiting charges are cancelled; this cannot be undone.`}
          act={() => api.post(`/v1/mandates/${m.id}/cancel`, { atPeriodEnd: false })}
          notice={`Mandate ${m.id} cancelled`}
          done={reload}
        />
      )}
      {open && m.cancelAtPeriodEnd && (
        <ConfirmAction
          label="Keep renewing"
          question={`Undo the cancel of mandate #${m.id} scheduled for the end of this period? It renews as before.`}
          act={() => api.post(`/v1/mandates/${m.id}/undo-cancel`)}
          notice={`Mandate ${m.id} renews as before: the scheduled cancel is undone`}
          done={reload}
        />
      )}
      {m.intent === 'unscheduled' && status === 'active' && (
        <ConfirmAction
          label="Charge now"
          question={`Charge mandate #${m.id} now: the charge is due at once and the next run sends it. Leave the amount empty for the mandate's ${money(m.amount, m.currency)}.`}
          confirm="Queue charge"
          act={() => {
            const raw = (document.getElementById(`charge-${m.id}`) as HTMLInputElement).value.trim();
            return api.post(
              `/v1/mandates/${m.id}/charges`,
              raw ? { amount: parseMajor(raw, m.currency, 'amount') } : {},
            );
          }}
          notice={(r) =>
            `Charge ${(r as { chargeId: number }).chargeId} queued on mandate ${m.id}: the next run sends it`
          }
          done={reload}
        >
          <Field label={`Amount (${m.currency})`}>
            <input id={`charge-${m.id}`} inputMode="decimal" placeholder={money(m.amount, m.currency)} />
          </Field>
        </ConfirmAction>
      )}
      {open && !m.cancelAtPeriodEnd && m.intent !== 'unscheduled' && (
        <ConfirmAction
          label="Cancel at period end"
          question={`Cancel mandate #${m.id} at the end of the current period?`}
          act={() => api.post(`/v1/mandates/${m.id}/cancel`, { atPeriodEnd: true })}
          notice={`Mandate ${m.id} will be cancelled at the end of this period`}
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
          notice={(r) => {
            const { change } = r as UpdateResult;
            return change.state === 'scheduled'
              ? `Mandate ${m.id} updated from ${when(change.effectiveAt)}`
              : `Mandate ${m.id} updated`;
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
          notice={`New card attached to mandate ${m.id}`}
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

/**
 * The gateway and, for Worldpay, the card API the credential is charged through, with a v7
 * credential's scheme reference quoted: its trailing spaces are part of it.
 */
function gatewayLine(m: MandateDetail): string {
  if (m.gateway !== 'worldpay') return m.gateway;
  const ref = m.credential.schemeReference;
  return `Worldpay ${m.credential.api}${ref !== null ? ` · scheme reference ${JSON.stringify(ref)}` : ''}`;
}
