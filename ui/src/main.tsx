import type { JSX } from 'preact';
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { resumeSession, signedOutHandler, signIn, signOut } from './api.ts';
import { ErrorBox, Notices, notify } from './components.tsx';
import { ChargePage, Charges } from './pages/charges.tsx';
import { Events } from './pages/events.tsx';
import { MandatePage, Mandates } from './pages/mandates.tsx';
import { Overview } from './pages/overview.tsx';
import { PaypalPage, PaypalPayments } from './pages/paypal.tsx';
import { RunPage, Runs } from './pages/runs.tsx';
import { href, linkHandler, navigate, useLocation } from './router.ts';
import './app.css';

const NAV: [string, string][] = [
  ['/', 'Overview'],
  ['/mandates', 'Mandates'],
  ['/charges', 'Charges'],
  ['/paypal', 'PayPal'],
  ['/runs', 'Runs'],
  ['/events', 'Events & webhooks'],
];

/** The pages by path: a list page takes the query, a detail page the id. */
const LISTS: Record<string, (p: { query: URLSearchParams }) => JSX.Element> = {
  '/': Overview,
  '/mandates': Mandates,
  '/charges': Charges,
  '/paypal': PaypalPayments,
  '/runs': Runs,
  '/events': Events,
};
const DETAILS: Record<string, (p: { id: number }) => JSX.Element> = {
  mandates: MandatePage,
  charges: ChargePage,
  paypal: PaypalPage,
  runs: RunPage,
};

function Route({ path, query }: { path: string; query: URLSearchParams }) {
  const List = LISTS[path];
  if (List) return <List query={query} />;
  const detail = /^\/(\w+)\/(\d+)$/.exec(path);
  const Detail = detail ? DETAILS[detail[1]!] : undefined;
  if (detail && Detail) return <Detail id={Number(detail[2])} key={path} />;
  return (
    <section>
      <h1>Not found</h1>
      <p>
        No console page at this address. <a href={href('/')}>Overview</a>
      </p>
    </section>
  );
}

function SignIn({ onSignedIn, why }: { onSignedIn: () => void; why: string | null }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const field = useRef<HTMLInputElement>(null);
  // The one thing to do on this page: the token field has the focus.
  useEffect(() => field.current?.focus(), []);
  const submit = async (e: Event) => {
    e.preventDefault();
    const token = String(new FormData(e.target as HTMLFormElement).get('token'));
    setBusy(true);
    setError(null);
    try {
      await signIn(token);
      onSignedIn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} aria-label="Sign in">
        <h1>rebill console</h1>
        {why && (
          <p class="notice" role="status">
            {why}
          </p>
        )}
        <label class="field">
          <span>Admin token</span>
          <input ref={field} type="password" name="token" autoComplete="current-password" required />
        </label>
        <button type="submit" class="primary" disabled={busy}>
          Sign in
        </button>
        <ErrorBox error={error} />
      </form>
    </main>
  );
}

function App() {
  const [state, setState] = useState<'loading' | 'in' | 'out'>('loading');
  const [error, setError] = useState<unknown>(null);
  const [why, setWhy] = useState<string | null>(null);
  const { path, query } = useLocation();
  useEffect(() => {
    document.addEventListener('click', (e) => {
      // A notice is about the page it was given on: following a link leaves it behind.
      if ((e.target as HTMLElement).closest('a')) notify(null);
      linkHandler(e);
    });
    signedOutHandler((reason) => {
      notify(null);
      setWhy(reason);
      setState('out');
    });
    resumeSession().then(
      (s) => setState(s ? 'in' : 'out'),
      (err: unknown) => {
        setError(err);
        setState('out');
      },
    );
  }, []);
  if (state === 'loading') return <p class="muted">Loading…</p>;
  if (state === 'out')
    return (
      <>
        <ErrorBox error={error} />
        <SignIn
          why={why}
          onSignedIn={() => {
            setWhy(null);
            setState('in');
          }}
        />
      </>
    );
  const section = path === '/' ? '/' : `/${path.split('/')[1]}`;
  return (
    <div class="layout">
      <header>
        <a class="brand" href={href('/')}>
          rebill
        </a>
        <nav aria-label="Sections">
          {NAV.map(([p, label]) => (
            <a key={p} href={href(p)} aria-current={section === p ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <button
          type="button"
          class="signout"
          onClick={async () => {
            try {
              await signOut();
            } finally {
              setState('out');
              navigate(href('/'), true);
            }
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <Notices />
        <Route path={path} query={query} />
      </main>
    </div>
  );
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App />, root);
}
