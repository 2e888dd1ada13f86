import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../billing/mandates/schemas.ts';
import { ForbiddenError, NotFoundError, UnauthorizedError } from '../errors.ts';
import { findUpwards } from '../paths.ts';
import { CsrfError } from './errors.ts';

/** The session cookie: HttpOnly, SameSite=Strict, Path=/, an expiry of its own. */
export const SESSION_COOKIE = 'rebill_session';
/** The header every state-changing request of a cookie session carries (double submit). */
export const CSRF_HEADER = 'x-csrf-token';
const SESSION_TTL_MS = 8 * 3_600_000;
const MAX_SESSIONS = 1_000;

/**
 * The console's pages may load only what this server serves: no inline script or style, no
 * other origin, no framing. Chart.js and Preact set styles through the CSSOM, which
 * `style-src 'self'` allows.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface Session {
  csrf: string;
  expiresAt: number;
}

const digest = (v: string) => createHash('sha256').update(v, 'utf8').digest('hex');

/**
 * Console sessions, kept in this process's memory by the digest of their cookie (the cookie
 * value itself is never stored): a restart signs operators out, which for an admin console is
 * the safe side. At most 1,000 at once; the oldest goes first.
 */
export function createSessionStore(ttlMs = SESSION_TTL_MS, now = () => Date.now()) {
  const sessions = new Map<string, Session>();
  return {
    ttlMs,
    create(): { id: string; csrf: string; expiresAt: number } {
      for (const [k, s] of sessions) if (s.expiresAt <= now()) sessions.delete(k);
      while (sessions.size >= MAX_SESSIONS) {
        const oldest = sessions.keys().next().value;
        if (oldest === undefined) break;
        sessions.delete(oldest);
      }
      const id = randomBytes(32).toString('base64url');
      const csrf = randomBytes(24).toString('base64url');
      const expiresAt = now() + ttlMs;
      sessions.set(digest(id), { csrf, expiresAt });
      return { id, csrf, expiresAt };
    },
    get(id: string): Session | undefined {
      const key = digest(id);
      const s = sessions.get(key);
      if (s && s.expiresAt <= now()) {
        sessions.delete(key);
        return undefined;
      }
      return s;
    },
    end(id: string): void {
      sessions.delete(digest(id));
    },
  };
}
export type SessionStore = ReturnType<typeof createSessionStore>;

/** The value of one cookie from a Cookie header, or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

const sameSecret = (a: string, b: string) => timingSafeEqual(Buffer.from(digest(a)), Buffer.from(digest(b)));

/** A 403 `csrf` unless the request carries the session's CSRF token (compared in constant time). */
function assertCsrf(req: FastifyRequest, s: Session, message: string): void {
  const presented = req.headers[CSRF_HEADER];
  if (typeof presented !== 'string' || !sameSecret(presented, s.csrf)) throw new CsrfError(message);
}

/**
 * Authenticates an admin request by its session cookie when it has no Authorization header:
 * returns false when there is no session cookie (the bearer check then decides), throws 401
 * for an unknown or expired session and 403 for a state-changing request without the
 * session's CSRF token.
 */
export function checkSession(req: FastifyRequest, sessions: SessionStore): boolean {
  if (req.headers.authorization !== undefined) return false;
  const id = readCookie(req.headers.cookie, SESSION_COOKIE);
  if (id === undefined || id === '') return false;
  const s = sessions.get(id);
  if (!s) throw new UnauthorizedError('the console session has expired or ended: sign in again');
  if (req.method !== 'GET' && req.method !== 'HEAD')
    assertCsrf(req, s, `a state-changing console request must carry the ${CSRF_HEADER} header`);
  return true;
}

/** dist/ui (built by scripts/build.js), found upwards from this module as migrations/ is. */
export function findConsoleAssets(): string | undefined {
  const root = findUpwards(join('dist', 'ui', 'app.js'));
  return root === undefined ? undefined : join(root, 'dist', 'ui');
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

function loadAssets(dir: string | undefined): Map<string, { body: Buffer; type: string; etag: string }> {
  const assets = new Map<string, { body: Buffer; type: string; etag: string }>();
  if (!dir || !existsSync(dir)) return assets;
  for (const name of readdirSync(dir)) {
    const type = TYPES[name.slice(name.lastIndexOf('.'))];
    if (!type) continue;
    const body = readFileSync(join(dir, name));
    assets.set(name, {
      body,
      type,
      etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`,
    });
  }
  return assets;
}

/**
 * The tab's icon, inline (the CSP allows `data:` images): no request of its own, so leaving a
 * page while the browser is still fetching it cannot fail one.
 */
const ICON = `data:image/svg+xml,${encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#2f6f4f"/><path d="M9 23V9h7a4.5 4.5 0 0 1 0 9h-7m7 0 5 5" fill="none" stroke="#fff" stroke-width="3" stroke-linecap="round" stroke-linejoin="round"/></svg>',
)}`;

const shell = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rebill console</title>
<link rel="icon" href="${ICON}" type="image/svg+xml">
<link rel="stylesheet" href="/ui/assets/app.css">
<script type="module" src="/ui/assets/app.js"></script>
</head>
<body><div id="app"><noscript>The rebill console needs JavaScript.</noscript></div></body>
</html>
`;

const signInBody = z.object({ token: z.string().min(1).max(512) }).strict();

function pageHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CONSOLE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('cache-control', 'no-store');
}

function sessionCookie(req: FastifyRequest, value: string, maxAgeSeconds: number): string {
  const secure = req.protocol === 'https' ? '; Secure' : '';
  return `${SESSION_COOKIE}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}${secure}`;
}

/**
 * The operator console at /ui: a single-page app (ui/, bundled into dist/ui) that reads and
 * acts through the admin API with a session cookie, so it has no SQL or state writes of its
 * own. Sign-in trades an admin token for the cookie; every state-changing call carries the
 * session's CSRF token; pages go out with a strict Content-Security-Policy.
 */
export function consoleRoutes(opts: {
  sessions: SessionStore;
  assetsDir: string | undefined;
  /** The admin token check and the failed-authentication lockout the API uses. */
  authenticate(req: FastifyRequest, reply: FastifyReply, header: string): void;
  /** The billing clock: the console's default windows and forecasts start from it. */
  now(): Date;
}) {
  const assets = loadAssets(opts.assetsDir);
  /** What the app learns of its session: the CSRF token to send, the expiry, the billing clock. */
  const signedIn = (s: Session) => ({
    signedIn: true,
    csrfToken: s.csrf,
    expiresAt: new Date(s.expiresAt).toISOString(),
    serverTime: opts.now().toISOString(),
  });
  return async (app: FastifyInstance) => {
    const page = async (_req: FastifyRequest, reply: FastifyReply) => {
      if (!assets.has('app.js'))
        return reply
          .code(503)
          .type('text/plain; charset=utf-8')
          .send('The console is not built: run `npm run build` (npm install does it).\n');
      return pageHeaders(reply).type('text/html; charset=utf-8').send(shell);
    };
    app.get('/ui', { config: { auth: 'none' } }, page);
    app.get('/ui/*', { config: { auth: 'none' } }, page);
    app.get('/ui/assets/:file', { config: { auth: 'none' } }, async (req, reply) => {
      const a = assets.get((req.params as { file: string }).file);
      if (!a) throw new NotFoundError('no such console asset', null);
      if (req.headers['if-none-match'] === a.etag) return reply.code(304).send();
      return reply
        .header('content-type', a.type)
        .header('etag', a.etag)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .send(a.body);
    });
    app.post('/ui/session', { config: { auth: 'none' } }, async (req, reply) => {
      const { token } = parseInput(signInBody, req.body ?? {});
      try {
        opts.authenticate(req, reply, `Bearer ${token}`);
      } catch (err) {
        // The same check as the API's, in the words of the form that asked.
        if (err instanceof ForbiddenError) throw new ForbiddenError('the admin token is not valid');
        throw err;
      }
      const s = opts.sessions.create();
      return reply
        .header('set-cookie', sessionCookie(req, s.id, Math.floor(opts.sessions.ttlMs / 1000)))
        .header('cache-control', 'no-store')
        .code(201)
        .send(signedIn(s));
    });
    app.get('/ui/session', { config: { auth: 'none' } }, async (req, reply) => {
      const id = readCookie(req.headers.cookie, SESSION_COOKIE);
      const s = id ? opts.sessions.get(id) : undefined;
      // Not signed in is an answer, not an error: the app shows its sign-in form.
      if (!s) return reply.header('cache-control', 'no-store').send({ signedIn: false });
      return reply.header('cache-control', 'no-store').send(signedIn(s));
    });
    app.post('/ui/session/end', { config: { auth: 'none' } }, async (req, reply) => {
      const id = readCookie(req.headers.cookie, SESSION_COOKIE);
      const s = id ? opts.sessions.get(id) : undefined;
      if (id && s) {
        assertCsrf(req, s, `signing out must carry the ${CSRF_HEADER} header`);
        opts.sessions.end(id);
      }
      return reply
        .header('set-cookie', sessionCookie(req, '', 0))
        .code(204)
        .send();
    });
  };
}
