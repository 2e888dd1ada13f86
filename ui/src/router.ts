import { useEffect, useState } from 'preact/hooks';

/** Paths under /ui, pushed with the History API; the server answers every /ui/* with the app. */
export const BASE = '/ui';

const listeners = new Set<() => void>();
window.addEventListener('popstate', () => {
  for (const l of listeners) l();
});

export function navigate(to: string, replace = false): void {
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  for (const l of listeners) l();
}

/** The current location (path and query), re-rendering on every navigation. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const l = () => setTick((t) => t + 1);
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) || '/' : '/';
  return { path, query: new URLSearchParams(location.search) };
}

/** A link that navigates in the app (a plain href still works with a middle click or a new tab). */
export function linkHandler(e: MouseEvent): void {
  const a = (e.target as HTMLElement).closest('a');
  if (!a || a.target || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(BASE)) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
}

/** `/ui/<path>` with a query built from the defined values. */
export function href(path: string, query: Record<string, string | number | undefined | null> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query))
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const qs = q.toString();
  return `${BASE}${path}${qs ? `?${qs}` : ''}`;
}

/** The named query parameters of a list page, '' where absent (its filters, in the URL). */
export function filtersOf<K extends string>(query: URLSearchParams, names: readonly K[]): Record<K, string> {
  return Object.fromEntries(names.map((n) => [n, query.get(n) ?? ''])) as Record<K, string>;
}

/**
 * A filter form's submit: its named fields (trimmed) become the page's query, so a filtered
 * view has its own URL (reload, back, a link to share) and a new filter starts at page one.
 */
export function submitFilters(path: string, names: readonly string[]) {
  return (e: Event) => {
    e.preventDefault();
    const d = new FormData(e.target as HTMLFormElement);
    navigate(href(path, Object.fromEntries(names.map((n) => [n, String(d.get(n) ?? '').trim()]))));
  };
}
