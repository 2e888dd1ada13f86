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

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  const field = error instanceof ApiError && error.field ? ` (${error.field})` : '';
  return (
    <p class="error" role="alert">
      {message}
      {field}
    </p>
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
 * acts. The API's error sentence, if it refuses, shows under the button.
 */
export function ConfirmAction(props: {
  label: string;
  question: string;
  confirm?: string;
  danger?: boolean;
  act: () => Promise<unknown>;
  done?: (result: unknown) => void;
  children?: ComponentChildren;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const result = await props.act();
      dialog.current?.close();
      props.done?.(result);
    } catch (err) {
      dialog.current?.close();
      setError(err);
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
      <ErrorBox error={error} />
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
