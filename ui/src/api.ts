/**
 * The console's only way to the server: the admin API (and /ui/session), same origin, with the
 * session cookie. State-changing calls carry the session's CSRF token and an Idempotency-Key,
 * so a repeated click or a retried request cannot act twice.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

interface Session {
  signedIn: true;
  csrfToken: string;
  expiresAt: string;
  serverTime: string;
}

let session: Session | null = null;
/** Why the console is back at sign-in: said there, so an operator knows what became of the click. */
export const EXPIRED_MID_ACTION = 'Your session expired: the action was not done';
export const EXPIRED = 'Your session expired: sign in again';

let onSignedOut: (why: string) => void = () => {};

export const signedOutHandler = (f: (why: string) => void) => {
  onSignedOut = f;
};
export const currentSession = () => session;

async function send<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') {
    if (session) headers['x-csrf-token'] = session.csrfToken;
    if (method === 'POST' && path.startsWith('/v1/')) headers['idempotency-key'] = crypto.randomUUID();
  }
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text === '' ? null : JSON.parse(text);
  } catch {
    throw new ApiError(
      res.status,
      'bad_response',
      `the server answered ${res.status} with a body that is not JSON`,
    );
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; field?: string } } | null)?.error;
    const err = new ApiError(res.status, e?.code ?? 'error', e?.message ?? `HTTP ${res.status}`, e?.field);
    if (res.status === 401 && path !== '/ui/session') {
      session = null;
      // A change refused for the session did not happen: the sign-in page says so.
      onSignedOut(method === 'GET' ? EXPIRED : EXPIRED_MID_ACTION);
    }
    throw err;
  }
  return json as T;
}

export const api = {
  get: <T>(path: string, query?: Record<string, string | number | undefined | null>) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {}))
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    const qs = q.toString();
    return send<T>('GET', qs ? `${path}?${qs}` : path);
  },
  post: <T>(path: string, body: unknown = {}) => send<T>('POST', path, body),
  patch: <T>(path: string, body: unknown) => send<T>('PATCH', path, body),
  del: <T>(path: string) => send<T>('DELETE', path),
};

/** The session the cookie holds, if any (on load). */
export async function resumeSession(): Promise<Session | null> {
  const s = await send<Session | { signedIn: false }>('GET', '/ui/session');
  session = s.signedIn ? s : null;
  return session;
}

export async function signIn(token: string): Promise<Session> {
  session = await send<Session>('POST', '/ui/session', { token });
  return session;
}

export async function signOut(): Promise<void> {
  await send<void>('POST', '/ui/session/end', {});
  session = null;
}
