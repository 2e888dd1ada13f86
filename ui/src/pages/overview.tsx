import { Fragment } from 'preact';
import { api, currentSession } from '../api.ts';
import { BarChart } from '../chart.tsx';
import { Field, Loading, useLoad } from '../components.tsx';
import { addDays, amounts, dateToIso, money, percent } from '../format.ts';
import { href, submitFilters } from '../router.ts';
import type { Daily, ForecastAnswer, Recovery, Summary } from '../types.ts';

/** The exports a window can be downloaded as (GET /v1/exports/{kind}), with their labels. */
const EXPORTS: [string, string][] = [
  ['charges', 'charges'],
  ['attempts', 'attempts'],
  ['mandates', 'mandates'],
  ['events', 'events'],
  ['paypal', 'PayPal payments'],
];

/** The window at a glance: the summary's figures and four charts, for ?from&to (UTC days). */
export function Overview({ query }: { query: URLSearchParams }) {
  const now = currentSession()?.serverTime ?? new Date().toISOString();
  const to = query.get('to') ?? addDays(now, 1).slice(0, 10);
  const from = query.get('from') ?? addDays(dateToIso(to), -30).slice(0, 10);
  const currency = query.get('currency') ?? '';
  const window = { from: dateToIso(from), to: dateToIso(to) };
  const data = useLoad(`${from}|${to}|${currency}`, async () => {
    const cur = currency || undefined;
    const [summary, recovery, daily, forecast] = await Promise.all([
      // the forecast is fetched once, by day, below: the summary need not walk the calendar too
      api.get<Summary>('/v1/reports/summary', { ...window, currency: cur, forecast: 'false' }),
      api.get<Recovery>('/v1/reports/recovery', window),
      api.get<Daily>('/v1/reports/daily', { ...window, currency: cur }),
      api.get<ForecastAnswer>('/v1/forecast', { from: now, to: addDays(now, 30), by: 'day', currency: cur }),
    ]);
    return { summary, recovery, daily, forecast };
  });
  const submit = submitFilters('/', ['from', 'to', 'currency']);
  return (
    <section>
      <h1>Overview</h1>
      <form class="filters" onSubmit={submit} aria-label="Window" key={`${from}|${to}|${currency}`}>
        <Field label="From (UTC)">
          <input type="date" name="from" defaultValue={from} required />
        </Field>
        <Field label="To (UTC, exclusive)">
          <input type="date" name="to" defaultValue={to} required />
        </Field>
        <Field label="Currency">
          <input name="currency" defaultValue={currency} placeholder="all" pattern="[A-Z]{3}" size={4} />
        </Field>
        <button type="submit">Show</button>
      </form>
      <nav class="downloads" aria-label="Exports">
        Download this window as CSV:{' '}
        {EXPORTS.map(([kind, label], i) => (
          <Fragment key={kind}>
            {i > 0 && ' · '}
            <a href={`/v1/exports/${kind}?${new URLSearchParams({ ...window, format: 'csv' })}`} download>
              {label}
            </a>
          </Fragment>
        ))}
      </nav>
      <Loading state={data}>
        {({ summary, recovery, daily, forecast }) => {
          const days = [...new Set(daily.days.map((d) => d.day))];
          const perDay = (k: 'authorized' | 'refused' | 'recovered') =>
            days.map((d) => daily.days.filter((x) => x.day === d).reduce((a, x) => a + x[k], 0));
          const codes = recovery.byCode.map((c) =>
            c.adviceCode ? `${c.refusalCode} / advice ${c.adviceCode}` : c.refusalCode,
          );
          const fDays = [...new Set(forecast.totals.map((t) => t.bucket))];
          const fCurrencies = [...new Set(forecast.totals.map((t) => t.currency))];
          return (
            <>
              <div class="cards">
                {summary.currencies.length === 0 && <p class="muted">No attempts in this window.</p>}
                {summary.currencies.map((c) => (
                  <article class="card" key={c.currency} aria-label={`Figures in ${c.currency}`}>
                    <h2>{c.currency}</h2>
                    <dl>
                      <dt>Charged</dt>
                      <dd>
                        {c.charged.charges} · {money(c.charged.amount, c.currency)}
                      </dd>
                      <dt>Settled</dt>
                      <dd>{money(c.settledAmount, c.currency)}</dd>
                      <dt>Refunded</dt>
                      <dd>{money(c.refundedAmount, c.currency)}</dd>
                      <dt>Net of refunds</dt>
                      <dd>{money(c.netAmount, c.currency)}</dd>
                      <dt>First-attempt rate</dt>
                      <dd>{percent(c.firstAttemptRate)}</dd>
                      <dt>Refusals</dt>
                      <dd>{c.refusals}</dd>
                      <dt>Recovered by retry</dt>
                      <dd>
                        {c.recoveredByRetry.charges} · {money(c.recoveredByRetry.amount, c.currency)}
                      </dd>
                      <dt>Failed for good</dt>
                      <dd>
                        {c.failedForGood.charges} · {money(c.failedForGood.amount, c.currency)}
                      </dd>
                    </dl>
                  </article>
                ))}
                <article class="card" aria-label="Book">
                  <h2>Book</h2>
                  <dl>
                    {Object.entries(summary.mandatesByStatus).map(([s, n]) => (
                      <Fragment key={s}>
                        <dt>Mandates {s.replaceAll('_', ' ')}</dt>
                        <dd>{n}</dd>
                      </Fragment>
                    ))}
                    <dt>Unknown outcomes open</dt>
                    <dd>{summary.unknownOpen}</dd>
                    <dt>Next 30 days</dt>
                    <dd>
                      {amounts(
                        forecast.totals.reduce<Record<string, number>>((acc, t) => {
                          acc[t.currency] = (acc[t.currency] ?? 0) + t.amount;
                          return acc;
                        }, {}),
                      )}
                    </dd>
                  </dl>
                </article>
              </div>
              <div class="charts">
                <BarChart
                  id="chart-daily"
                  title="Charges per day"
                  labels={days}
                  stacked
                  series={[
                    { label: 'authorized', values: perDay('authorized') },
                    { label: 'refused', values: perDay('refused') },
                    { label: 'recovered', values: perDay('recovered') },
                  ]}
                />
                <BarChart
                  id="chart-refusals"
                  title="Refusals by code"
                  labels={codes}
                  series={[
                    { label: 'refused', values: recovery.byCode.map((c) => c.refused) },
                    { label: 'recovered', values: recovery.byCode.map((c) => c.recovered) },
                  ]}
                  empty="No refusals in this window."
                />
                <BarChart
                  id="chart-funnel"
                  title="Retry funnel"
                  labels={recovery.funnel.map((f) => `attempt ${f.attempt}`)}
                  series={[
                    { label: 'attempts', values: recovery.funnel.map((f) => f.attempts) },
                    { label: 'authorized', values: recovery.funnel.map((f) => f.authorized) },
                  ]}
                />
                <BarChart
                  id="chart-forecast"
                  title="Forecast, next 30 days (charges)"
                  labels={fDays}
                  stacked
                  series={fCurrencies.map((cur) => ({
                    label: cur,
                    values: fDays.map(
                      (d) => forecast.totals.find((t) => t.bucket === d && t.currency === cur)?.charges ?? 0,
                    ),
                  }))}
                  empty="Nothing due in the next 30 days."
                />
              </div>
              <h2>Recovery by refusal code</h2>
              <section class="table-wrap" aria-label="Recovery by refusal code">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">code</th>
                      <th scope="col">advice</th>
                      <th scope="col">refused</th>
                      <th scope="col">recovered</th>
                      <th scope="col">rate</th>
                      <th scope="col">amount recovered</th>
                      <th scope="col">median days</th>
                      <th scope="col">failed / stopped / new card</th>
                    </tr>
                  </thead>
                  <tbody>
                    {recovery.byCode.map((c) => (
                      <tr key={`${c.refusalCode}-${c.adviceCode}`}>
                        <td>
                          <a href={href('/charges', { code: c.refusalCode })}>{c.refusalCode}</a>
                        </td>
                        <td>{c.adviceCode ?? '—'}</td>
                        <td>{c.refused}</td>
                        <td>{c.recovered}</td>
                        <td>{percent(c.recoveryRate)}</td>
                        <td>{amounts(c.recoveredAmount)}</td>
                        <td>{c.medianDaysToRecover ?? '—'}</td>
                        <td>
                          {c.failed} / {c.stopped} / {c.needsNewCredential}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </section>
            </>
          );
        }}
      </Loading>
    </section>
  );
}
