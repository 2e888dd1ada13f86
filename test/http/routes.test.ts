import { readdirSync, readFileSync } from 'node:fs';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { createRunner } from '../../src/billing/run/runner.ts';
import type { Database } from '../../src/db/client.ts';
import { defineRoute, mountRoute } from '../../src/http/route.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { WEBHOOK_PATH } from '../../src/http/webhook.ts';
import { createLogger } from '../../src/logger.ts';
import { startWorld, type World } from '../support/world.ts';

const TOKEN = 'tok-routes-0123456789';

interface Operation {
  parameters?: { name: string; in: string; required: boolean }[];
  requestBody?: unknown;
  responses: Record<string, unknown>;
  security?: unknown[];
}

describe('every route is declared through defineRoute', () => {
  let w: World;
  let server: AdminServer;
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ADMIN_TOKENS: TOKEN } });
    const app = await w.app(new Date('2026-06-01T10:00:00Z'));
    server = await createAdminServer({ ctx: app, runner: createRunner(app) });
  });
  afterAll(async () => {
    await server?.close();
    await w?.close();
  });

  it('each registered route but the Worldpay webhook comes from a definition the document describes', () => {
    const paths = (server.openapi as { paths: Record<string, Record<string, Operation>> }).paths;
    const undeclared = server
      .registered()
      .filter((r) => r.route === undefined)
      .map((r) => `${r.method} ${r.url}`);
    // The webhook keeps its raw body in its own plugin scope (src/http/webhook.ts).
    expect(undeclared).toEqual([`POST ${WEBHOOK_PATH}`]);
    const declared = server.registered().filter((r) => r.route !== undefined);
    expect(declared.length).toBe(server.routes.length);
    expect(declared.length).toBeGreaterThan(40);
    for (const { method, url, route } of declared) {
      const name = `${method} ${url}`;
      expect(route, name).toBeDefined();
      expect(server.routes, name).toContain(route);
      expect(route!.params, name).toBeInstanceOf(z.ZodType);
      const op = paths[url.replace(/:([A-Za-z]+)/g, '{$1}')]?.[method.toLowerCase()];
      expect(op, name).toBeDefined();
      expect(Object.keys(op!.responses), name).toContain(String(route!.status));
      expect(op!.security === undefined, name).toBe(route!.auth === 'bearer');
      const inPath = (op!.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
      expect(inPath, name).toEqual([...url.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1]));
      const inQuery = (op!.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
      const queryKeys = route!.query ? Object.keys((route!.query as z.ZodObject).shape) : [];
      expect(inQuery, name).toEqual(queryKeys);
      expect(op!.requestBody !== undefined, name).toBe(route!.body !== undefined);
    }
  });

  it('no route handler parses its input again', () => {
    const dir = new URL('../../src/http/routes/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const text = readFileSync(new URL(f, dir), 'utf8');
      expect(text, f).not.toMatch(/parseInput|safeParse|\.parse\(/);
      expect(text.split('\n').length, f).toBeLessThan(400);
    }
  });
});

describe('defineRoute', () => {
  const logger = createLogger({ level: 'silent' });
  // No route here touches the database: a POST without an Idempotency-Key does not either.
  const ctx = { database: undefined as unknown as Database, logger };

  it('parses path, query and body once with the declared schemas and hands the handler the result', async () => {
    let queryParses = 0;
    const seen: unknown[] = [];
    const route = defineRoute({
      method: 'POST',
      url: '/things/:id/parts/:partId',
      tag: 'test',
      summary: 'A test route',
      query: z
        .object({
          limit: z.coerce
            .number()
            .int()
            .default(7)
            .transform((n) => {
              queryParses++;
              return n;
            }),
        })
        .strict(),
      body: z.object({ note: z.string().default('none') }).strict(),
      status: 201,
      async handler(input) {
        expectTypeOf(input.params.id).toEqualTypeOf<number>();
        expectTypeOf(input.params.partId).toEqualTypeOf<number>();
        expectTypeOf(input.query.limit).toEqualTypeOf<number>();
        expectTypeOf(input.body.note).toEqualTypeOf<string>();
        seen.push(input);
        return { ok: true };
      },
    });
    const app = Fastify();
    mountRoute(app, route, ctx);
    await app.ready();

    const res = await app.inject({ method: 'POST', url: '/things/12/parts/3' });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({ ok: true });
    expect(seen).toEqual([{ params: { id: 12, partId: 3 }, query: { limit: 7 }, body: { note: 'none' } }]);
    expect(queryParses).toBe(1);

    const given = await app.inject({
      method: 'POST',
      url: '/things/1/parts/2?limit=40',
      payload: { note: 'n' },
    });
    expect(given.statusCode).toBe(201);
    expect(seen[1]).toEqual({ params: { id: 1, partId: 2 }, query: { limit: 40 }, body: { note: 'n' } });
    expect(queryParses).toBe(2);

    // A bad input is the 400 naming the field, and the handler is not called.
    for (const [url, field, message] of [
      ['/things/0/parts/2', 'id', 'id: must be a positive integer id'],
      ['/things/1/parts/x', 'partId', 'partId: must be a positive integer id'],
      ['/things/1/parts/2?other=1', 'body', 'body: Unrecognized key: "other"'],
    ] as const) {
      const bad = await app.inject({ method: 'POST', url });
      expect(bad.statusCode, url).toBe(400);
      expect(bad.json(), url).toEqual({ error: { code: 'validation_error', message, field } });
    }
    expect(seen).toHaveLength(2);
    await app.close();
  });

  it('reads the body before the path for a bodyFirst route, and an absent body as {} unless bodyRequired', async () => {
    const body = z.object({ a: z.number() }).strict();
    const app = Fastify();
    for (const [url, opts] of [
      ['/first/:id', { bodyFirst: true }],
      ['/path/:id', {}],
      ['/required/:id', { bodyRequired: true }],
    ] as const)
      mountRoute(
        app,
        defineRoute({
          method: 'POST',
          url,
          tag: 'test',
          summary: url,
          body,
          status: 200,
          ...opts,
          handler: async ({ body }) => body,
        }),
        ctx,
      );
    await app.ready();
    const field = async (url: string, payload: object) =>
      (await app.inject({ method: 'POST', url, payload })).json().error.field;
    expect(await field('/first/0', { a: 'x' })).toBe('a');
    expect(await field('/path/0', { a: 'x' })).toBe('id');
    expect((await app.inject({ method: 'POST', url: '/path/1' })).json().error.message).toBe(
      'a: Invalid input: expected number, received undefined',
    );
    expect((await app.inject({ method: 'POST', url: '/required/1' })).json().error.message).toBe(
      'body: Invalid input: expected object, received undefined',
    );
    await app.close();
  });
});
