import { useState } from 'preact/hooks';
import { EVENT_TYPES, type EventType, eventTypes } from '../../../src/events/types.ts';
import { api } from '../api.ts';
import { Badge, ConfirmAction, Field, Loading, perform, Table, useLoad } from '../components.tsx';
import { when } from '../format.ts';
import { filtersOf, href, submitFilters } from '../router.ts';
import type { Delivery, Endpoint, EventItem, Page } from '../types.ts';

/** Webhook endpoints with their recent deliveries (resend any), and the event log. */
export function Events({ query }: { query: URLSearchParams }) {
  const f = filtersOf(query, ['type', 'mandateId', 'before', 'after']);
  const endpoints = useLoad('endpoints', async () => {
    const list = await api.get<{ items: Endpoint[] }>('/v1/webhook-endpoints');
    return Promise.all(
      list.items.map(async (e) => ({
        e,
        deliveries: (await api.get<Page<Delivery>>(`/v1/webhook-endpoints/${e.id}/deliveries`, { limit: 20 }))
          .items,
      })),
    );
  });
  // Newest first: `next` reads older events (before=), `previous` newer ones (after=, order=desc).
  const events = useLoad(`events-${JSON.stringify(f)}`, () =>
    api.get<{ items: EventItem[]; next: string | null; previous: string | null }>('/v1/events', {
      ...f,
      order: 'desc',
      limit: 50,
    }),
  );
  const filters = { type: f.type, mandateId: f.mandateId };
  const [secret, setSecret] = useState<string | null>(null);
  const add = async (e: Event) => {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const d = new FormData(form);
    await perform(
      () =>
        api.post<{ id: number; secret: string }>('/v1/webhook-endpoints', {
          url: String(d.get('url')).trim(),
          events: ['*'],
          ...(String(d.get('description')).trim()
            ? { description: String(d.get('description')).trim() }
            : {}),
        }),
      (created) => `Endpoint ${created.id} added`,
      (created) => {
        setSecret(created.secret);
        form.reset();
        endpoints.reload();
      },
    );
  };
  return (
    <section>
      <h1>Events and webhooks</h1>
      <h2>Endpoints</h2>
      <form class="filters" onSubmit={add} aria-label="Add an endpoint">
        <Field label="URL">
          <input name="url" type="url" required placeholder="https://example.com/rebill" />
        </Field>
        <Field label="Description">
          <input name="description" maxLength={200} />
        </Field>
        <button type="submit">Add endpoint</button>
      </form>
      {secret && (
        <p class="notice secret">
          Signing secret, shown this once: <code>{secret}</code>
        </p>
      )}
      <Loading state={endpoints}>
        {(list) => (
          <>
            {list.length === 0 && <p class="muted">No endpoints.</p>}
            {list.map(({ e, deliveries }) => (
              <article class="endpoint" key={e.id} aria-label={`Endpoint ${e.id}`}>
                <h3>
                  #{e.id} {e.url} <Badge value={e.status} />
                </h3>
                {e.statusReason && <p class="reason">{e.statusReason}</p>}
                <p class="muted">
                  {e.description ? `${e.description} · ` : ''}
                  {e.events.includes('*') ? 'every event' : e.events.join(', ')}
                </p>
                <div class="actions">
                  <ConfirmAction
                    label="Send test event"
                    question={`Send a ping event to ${e.url}?`}
                    act={() => api.post(`/v1/webhook-endpoints/${e.id}/test`)}
                    notice={`Test event sent to endpoint ${e.id}`}
                    done={endpoints.reload}
                  />
                  <ConfirmAction
                    label="Rotate secret"
                    question={`Give endpoint #${e.id} a new signing secret? The old one signs beside it for 24 hours.`}
                    confirm="Rotate"
                    act={() => api.post<{ secret: string }>(`/v1/webhook-endpoints/${e.id}/rotate-secret`)}
                    notice={`Endpoint ${e.id} has a new signing secret; the old one signs beside it for 24 hours`}
                    done={(r) => {
                      setSecret((r as { secret: string }).secret);
                      endpoints.reload();
                    }}
                  />
                  <ConfirmAction
                    label="Event types"
                    question={`The events endpoint #${e.id} receives, from the next event on.`}
                    confirm="Save event types"
                    act={() => {
                      const boxes = document.querySelectorAll<HTMLInputElement>(
                        `#types-${e.id} input:checked`,
                      );
                      const chosen = [...boxes].map((b) => b.value);
                      return api.patch(`/v1/webhook-endpoints/${e.id}`, {
                        events: chosen.includes('*') ? ['*'] : chosen,
                      });
                    }}
                    notice={`Endpoint ${e.id}'s event types saved`}
                    done={endpoints.reload}
                  >
                    <fieldset id={`types-${e.id}`} class="types">
                      <legend>Event types</legend>
                      {['*', ...eventTypes].map((t) => (
                        <label
                          class="check"
                          key={t}
                          title={t === '*' ? 'every event' : EVENT_TYPES[t as EventType]}
                        >
                          <input type="checkbox" value={t} defaultChecked={e.events.includes(t)} />{' '}
                          {t === '*' ? 'every event (*)' : t}
                        </label>
                      ))}
                    </fieldset>
                  </ConfirmAction>
                  <ConfirmAction
                    label="Remove"
                    danger
                    question={`Remove endpoint #${e.id}? Deliveries still waiting end as failed.`}
                    act={() => api.del(`/v1/webhook-endpoints/${e.id}`)}
                    notice={`Endpoint ${e.id} removed`}
                    done={endpoints.reload}
                  />
                </div>
                <Table
                  label={`Deliveries to endpoint ${e.id}`}
                  head={[
                    'delivery',
                    'event',
                    'type',
                    'state',
                    'attempts',
                    'last status',
                    'last error',
                    'last attempt',
                    '',
                  ]}
                  empty="No deliveries yet."
                  rows={deliveries.map((d) => [
                    `#${d.id}`,
                    d.eventId,
                    d.eventType ?? '—',
                    <Badge value={d.state} />,
                    d.attempts,
                    d.lastStatus ?? '—',
                    d.lastError ?? '—',
                    when(d.lastAttemptAt),
                    <ConfirmAction
                      label="Resend"
                      question={`Deliver event ${d.eventId} to ${e.url} again now?`}
                      act={() => api.post(`/v1/webhook-deliveries/${d.id}/resend`)}
                      notice={`Event ${d.eventId} sent to endpoint ${e.id} again`}
                      done={endpoints.reload}
                    />,
                  ])}
                />
              </article>
            ))}
          </>
        )}
      </Loading>
      <h2>Event log</h2>
      <form
        class="filters"
        onSubmit={submitFilters('/events', ['type', 'mandateId'])}
        aria-label="Filter events"
        key={JSON.stringify(filters)}
      >
        <Field label="Type">
          <select name="type">
            <option value="">any</option>
            {eventTypes.map((t) => (
              <option key={t} value={t} selected={t === f.type}>
                {t}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Mandate">
          <input name="mandateId" inputMode="numeric" pattern="[0-9]+" size={6} defaultValue={f.mandateId} />
        </Field>
        <button type="submit">Filter</button>
      </form>
      <Loading state={events}>
        {(page) => (
          <>
            <Table
              label="Events"
              head={['event', 'type', 'at', 'mandate', 'customer', 'payload']}
              empty="No events."
              rows={page.items.map((ev) => [
                ev.id,
                ev.type,
                when(ev.createdAt),
                ev.mandateId ? <a href={href(`/mandates/${ev.mandateId}`)}>#{ev.mandateId}</a> : '—',
                ev.customerRef ?? '—',
                <details class="payload">
                  <summary aria-label={`Payload of event ${ev.id}`}>Payload</summary>
                  <pre>{JSON.stringify(ev.data, null, 2)}</pre>
                </details>,
              ])}
            />
            <nav class="pager" aria-label="Pages">
              {(f.before || f.after) && <a href={href('/events', filters)}>Newest</a>}
              {page.previous !== null && (f.before || f.after) && (
                <a href={href('/events', { ...filters, after: page.previous })}>Newer</a>
              )}
              {page.next !== null && <a href={href('/events', { ...filters, before: page.next })}>Older</a>}
            </nav>
          </>
        )}
      </Loading>
    </section>
  );
}
