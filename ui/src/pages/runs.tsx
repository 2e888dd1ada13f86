import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { RUN_COUNT_LABELS } from '../../../src/domain/labels.ts';
import { api, currentSession } from '../api.ts';
import { Badge, Field, Loading, perform, Table, useLoad } from '../components.tsx';
import { money, when } from '../format.ts';
import { href, navigate } from '../router.ts';
import type { Page, Run } from '../types.ts';

/** While `active`, call `f` every `ms` (a running run's progress). */
function usePoll(active: boolean, f: () => void, ms = 1000) {
  useEffect(() => {
    if (!active) return;
    const t = setInterval(f, ms);
    return () => clearInterval(t);
  }, [active, f, ms]);
}

const COUNTS = [
  'due',
  'attempted',
  'authorized',
  'refused',
  'retryScheduled',
  'needsNewCredential',
  'failed',
  'settleRequested',
  'unknown',
  'errors',
] as const;

/** Runs, newest first, and a form to start one (or a dry run) for an as-of instant. */
export function Runs({ query }: { query: URLSearchParams }) {
  const before = query.get('before') ?? '';
  const data = useLoad(`runs-${before}`, () => api.get<Page<Run>>('/v1/runs', { limit: 25, before }));
  usePoll(data.value?.items.some((r) => r.status === 'running') ?? false, data.reload);
  const now = currentSession()?.serverTime ?? new Date().toISOString();
  const [busy, setBusy] = useState(false);
  const start = async (e: Event) => {
    e.preventDefault();
    const d = new FormData(e.target as HTMLFormElement);
    const dryRun = d.get('dryRun') === 'on';
    setBusy(true);
    await perform(
      () =>
        api.post<{ id: number }>('/v1/runs', {
          asOf: `${String(d.get('asOf'))}:00.000Z`,
          dryRun,
          allowFuture: d.get('allowFuture') === 'on',
        }),
      (r) => `${dryRun ? 'Dry run' : 'Run'} ${r.id} started`,
      (r) => navigate(href(`/runs/${r.id}`)),
    );
    setBusy(false);
  };
  return (
    <section>
      <h1>Runs</h1>
      <form class="filters" onSubmit={start} aria-label="Start a run">
        <Field label="As of (UTC)">
          <input type="datetime-local" name="asOf" defaultValue={now.slice(0, 16)} required />
        </Field>
        <label class="check">
          <input type="checkbox" name="dryRun" defaultChecked /> Dry run (send nothing)
        </label>
        <label class="check">
          <input type="checkbox" name="allowFuture" /> Allow a future as-of
        </label>
        <button type="submit" class="primary" disabled={busy}>
          Start run
        </button>
      </form>
      <Loading state={data}>
        {(page) => (
          <>
            <Table
              label="Runs"
              head={[
                'run',
                'as of',
                'kind',
                'trigger',
                'status',
                'due',
                'authorized',
                'refused',
                'started',
                'finished',
              ]}
              empty="No runs yet."
              rows={page.items.map((r) => [
                <a href={href(`/runs/${r.id}`)}>#{r.id}</a>,
                when(r.asOf),
                r.dryRun ? 'dry run' : 'run',
                r.trigger,
                <Badge value={r.status} />,
                r.counts.due ?? 0,
                r.counts.authorized ?? 0,
                r.counts.refused ?? 0,
                when(r.startedAt),
                when(r.finishedAt),
              ])}
            />
            <nav class="pager" aria-label="Pages">
              {before && <a href={href('/runs')}>Newest</a>}
              {page.next !== null && <a href={href('/runs', { before: page.next })}>Older</a>}
            </nav>
          </>
        )}
      </Loading>
    </section>
  );
}

/** What a dry run would send: the forecast's items for its as-of. */
interface WouldSend {
  mandateId: number;
  customerRef: string;
  kind: string;
  cycle: number | null;
  amount: number;
  currency: string;
  dueAt: string;
}

/** One run; polled while it is running, so its counts move live. */
export function RunPage({ id }: { id: number }) {
  const data = useLoad(`run-${id}`, () => api.get<Run>(`/v1/runs/${id}`));
  usePoll(data.value?.status === 'running', data.reload);
  return (
    <section>
      <p>
        <a href={href('/runs')}>← Runs</a>
      </p>
      <Loading state={data}>
        {(r) => (
          <>
            <h1>
              {r.dryRun ? 'Dry run' : 'Run'} #{r.id} <Badge value={r.status} />
            </h1>
            <p aria-live="polite" class="muted">
              {r.status === 'running'
                ? 'Running… the counts update every second.'
                : `Finished ${when(r.finishedAt)}.`}
            </p>
            {r.error && <p class="error">{r.error}</p>}
            <dl class="facts">
              <dt>As of</dt>
              <dd>{when(r.asOf)}</dd>
              <dt>Trigger</dt>
              <dd>{r.trigger}</dd>
              <dt>Started</dt>
              <dd>{when(r.startedAt)}</dd>
              {COUNTS.map((k) => (
                <Fragment key={k}>
                  <dt>{RUN_COUNT_LABELS[k]}</dt>
                  <dd data-count={k}>{r.counts[k] ?? 0}</dd>
                </Fragment>
              ))}
            </dl>
            {Array.isArray(r.wouldSend) && (
              <>
                <h2>Would send</h2>
                <Table
                  label="Would send"
                  head={['mandate', 'customer', 'what', 'cycle', 'amount', 'due']}
                  empty="Nothing is due."
                  rows={(r.wouldSend as WouldSend[]).map((w) => [
                    <a href={href(`/mandates/${w.mandateId}`)}>#{w.mandateId}</a>,
                    w.customerRef,
                    w.kind,
                    w.cycle ?? '—',
                    money(w.amount, w.currency),
                    when(w.dueAt),
                  ])}
                />
              </>
            )}
          </>
        )}
      </Loading>
    </section>
  );
}
