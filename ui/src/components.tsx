import { type ComponentChildren, cloneElement, type VNode } from 'preact';
import { useCallback, useEffect, useId, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.ts';

/** Data loaded from the API for a key (the URL, usually): loading, error, value and a reload. */
export function useLoad<T>(key: string, load: () => Promise<T>) {
  const [state, setState] = useState<{ key: string; value?: T; error?: unknown; loading: boolean }>({
    key,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    // Another key (a new filter, another page): the old answer is not this one's, so it goes;
    // the same key (a reload, a poll): it stays on screen until the new one arrives.
    setState((s) => (s.key === key ? { ...s, loading: true } : { key, loading: true }));
    load().then(
      (value) => live && setState({ key, value, loading: false }),
      (error: unknown) => live && setState({ key, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [key, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** Words of the state machines as an operator reads them: `needs_new_credential` → "needs new credential". */
export const plainWords = (text: string): string =>
  text.replace(/\b[a-z]+(?:_[a-z]+)+\b/g, (w) => w.replaceAll('_', ' '));

/** An error as one sentence: the API's (amounts in major units, state names in words) and the field it names. */
export function errorText(error: unknown): string {
  const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  const field =
    error instanceof ApiError && error.field && !message.includes(error.field) ? ` (${error.field})` : '';
  return `${plainWords(message)}${field}`;
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {errorText(error)}
    </p>
  );
}

/** What the last action did, or why it was refused: one line above the page, until the next. */
export interface Notice {
  kind: 'done' | 'refused';
  text: string;
}
let notice: Notice | null = null;
const noticeListeners = new Set<() => void>();
export function notify(n: Notice | null): void {
  notice = n;
  for (const l of noticeListeners) l();
}

/**
 * An action outside a dialog (a form's submit, a button that only asks): done, its notice; refused,
 * the API's sentence. Resolves to the answer, or undefined when refused.
 */
export async function perform<T>(
  act: () => Promise<T>,
  notice: (result: T) => string,
  done?: (result: T) => void,
): Promise<T | undefined> {
  notify(null);
  try {
    const result = await act();
    notify({ kind: 'done', text: notice(result) });
    done?.(result);
    return result;
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) notify({ kind: 'refused', text: errorText(err) });
    return undefined;
  }
}

/**
 * The notice line: a success as a status, a refusal as an alert, in a bar of its own over the
 * page (sticky, so it shows wherever the button was), never inside a row of buttons.
 */
export function Notices() {
  const [, setTick] = useState(0);
  useEffect(() => {
    const l = () => setTick((t) => t + 1);
    noticeListeners.add(l);
    return () => {
      noticeListeners.delete(l);
    };
  }, []);
  if (!notice) return null;
  const n = notice;
  return (
    <div class={`notice-bar ${n.kind}`} role={n.kind === 'done' ? 'status' : 'alert'}>
      <span>{n.text}</span>
      <button type="button" class="dismiss" aria-label="Dismiss" onClick={() => notify(null)}>
        ×
      </button>
    </div>
  );
}

export function Loading<T>({
  state,
  children,
}: {
  state: { value?: T; error?: unknown; loading: boolean };
  children: (v: T) => ComponentChildren;
}) {
  if (state.error) return <ErrorBox error={state.error} />;
  if (state.value === undefined)
    return (
      <p class="muted" aria-busy="true">
        Loading…
      </p>
    );
  return <>{children(state.value)}</>;
}

export const Badge = ({ value }: { value: string }) => (
  <span class={`badge badge-${value}`}>{value.replaceAll('_', ' ')}</span>
);

/** A table that scrolls sideways on a narrow screen instead of overflowing the page. */
export function Table({
  head,
  rows,
  label,
  empty = 'Nothing here.',
}: {
  head: string[];
  rows: ComponentChildren[][];
  label: string;
  empty?: string;
}) {
  if (rows.length === 0) return <p class="muted">{empty}</p>;
  return (
    <section class="table-wrap" aria-label={label}>
      <table>
        <thead>
          <tr>
            {head.map((h) => (
              <th scope="col" key={h}>
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={i}>
              {r.map((c, j) => (
                <td key={j}>{c}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/**
 * A button that asks first: a modal <dialog> says what will happen, and only its confirm button
 * acts. Done, the notice line says what was done (`notice`); refused, it gives the API's
 * sentence. A session that ended meanwhile is the sign-in page's to say.
 */
export function ConfirmAction(props: {
  label: string;
  question: string;
  confirm?: string;
  danger?: boolean;
  act: () => Promise<unknown>;
  /** The success notice: "Mandate 12 paused". */
  notice: string | ((result: unknown) => string);
  done?: (result: unknown) => void;
  children?: ComponentChildren;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const run = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    notify(null);
    try {
      const result = await props.act();
      dialog.current?.close();
      notify({ kind: 'done', text: typeof props.notice === 'string' ? props.notice : props.notice(result) });
      props.done?.(result);
    } catch (err) {
      dialog.current?.close();
      if (!(err instanceof ApiError && err.status === 401)) notify({ kind: 'refused', text: errorText(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <span class="action">
      <button type="button" class={props.danger ? 'danger' : ''} onClick={() => dialog.current?.showModal()}>
        {props.label}
      </button>
      <dialog ref={dialog} aria-label={props.label}>
        <form method="dialog" onSubmit={run}>
          <p>{props.question}</p>
          {props.children}
          <div class="buttons">
            <button type="button" onClick={() => dialog.current?.close()}>
              Back
            </button>
            <button type="submit" class={props.danger ? 'danger' : 'primary'} disabled={busy}>
              {props.confirm ?? props.label}
            </button>
          </div>
        </form>
      </dialog>
    </span>
  );
}

/** A labelled form control: the label points at the control's id (its own, or a new one). */
export function Field({ label, children }: { label: string; children: VNode<{ id?: string }> }) {
  const generated = useId();
  const id = children.props.id ?? generated;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {cloneElement(children, { id })}
    </div>
  );
}
