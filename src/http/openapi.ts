import { z } from 'zod';
import { EVENT_TYPES, eventTypes } from '../events/types.ts';
import { type Method, paramNames, type RouteDef } from './route.ts';

/** A route registered outside defineRoute (the Worldpay webhook, in its raw-body scope). */
export interface ExtraRoute {
  method: Method;
  url: string;
  summary: string;
  tag: string;
  auth: 'bearer' | 'none' | 'signature';
  status: number;
  /** Path parameters' schemas by name (default: a positive integer id). */
  pathParams?: Record<string, Record<string, unknown>>;
  query?: z.ZodType;
  /** Error answers besides 400 (and, for bearer routes, 401 and 403). */
  errors?: Record<string, string>;
  /** false: the route never reads the database, so it is never a 503 `database_unavailable`. */
  database?: boolean;
}

/** Named examples of a request body: each is checked against the schema by the tests. */
const exampleMap = (examples: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(examples).map(([name, value]) => [name, { value }]));

const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z]+)/g, '{$1}');

function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const out = z.toJSONSchema(schema, {
    unrepresentable: 'any',
    io: 'input',
    // An instant is a Date inside the process and an ISO-8601 string on the wire.
    override: (ctx) => {
      if (ctx.zodSchema._zod.def.type === 'date')
        Object.assign(ctx.jsonSchema, { type: 'string', format: 'date-time' });
    },
  }) as Record<string, unknown>;
  delete out.$schema;
  return out;
}

const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' }, field: { type: 'string' } },
    },
  },
};

const eventSchema = {
  type: 'object',
  required: ['id', 'type', 'createdAt', 'data'],
  properties: {
    id: { type: 'string', description: 'A monotonic integer: the cursor of GET /v1/events (after, before)' },
    type: {
      type: 'string',
      enum: eventTypes,
      description: eventTypes.map((t) => `${t}: ${EVENT_TYPES[t]}`).join('\n'),
    },
    createdAt: { type: 'string', format: 'date-time' },
    mandateId: { type: ['integer', 'null'] },
    customerRef: { type: ['string', 'null'] },
    data: {
      type: 'object',
      description: 'The object after the change, with `previous`; never a card number',
    },
  },
};

/** OpenAPI 3.1 built from the same route definitions the server registers. */
export function openApiDocument(routes: RouteDef[], extra: ExtraRoute[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const add = (method: string, url: string, op: Record<string, unknown>) => {
    const p = toOpenApiPath(url);
    paths[p] ??= {};
    paths[p][method.toLowerCase()] = op;
  };
  const params = (url: string, schemas: Record<string, Record<string, unknown>> = {}) =>
    paramNames(url).map((name) => ({
      name,
      in: 'path',
      required: true,
      schema: schemas[name] ?? { type: 'integer', minimum: 1 },
    }));
  const queryParams = (query: z.ZodType | undefined) => {
    if (!query) return [];
    const q = jsonSchema(query) as { properties?: Record<string, unknown>; required?: string[] };
    return Object.entries(q.properties ?? {}).map(([name, schema]) => ({
      name,
      in: 'query',
      required: q.required?.includes(name) ?? false,
      schema,
    }));
  };
  const error = (description: string) => ({
    description,
    content: { 'application/json': { schema: errorSchema } },
  });
  // Every route that reads the database: answered when it cannot be reached (src/db/unavailable.ts).
  const unavailable = {
    ...error('The database cannot be reached (`database_unavailable`): retry after Retry-After'),
    headers: {
      'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer' } },
    },
  };
  const errors = {
    '400': error('Invalid request (the message names the field)'),
    '401': error('Missing bearer token or console session'),
    '403': error('Wrong bearer token, or a console change without its CSRF token'),
    '404': error('Not found'),
    '409': error('Not allowed in the current state (amount limits, states)'),
    '422': error('Idempotency-Key reused for a different request'),
    '503': unavailable,
  };
  for (const r of routes.filter((r) => !r.raw)) {
    const parameters: Record<string, unknown>[] = [...params(r.url), ...queryParams(r.query)];
    if (r.method !== 'GET')
      parameters.push({
        name: 'Idempotency-Key',
        in: 'header',
        required: false,
        description: 'Replays the first response for the same key and request',
        schema: { type: 'string', maxLength: 255 },
      });
    add(r.method, r.url, {
      summary: r.summary,
      tags: [r.tag],
      operationId: `${r.method.toLowerCase()}${r.url.replace(/[/:-]+(\w)/g, (_, c: string) => c.toUpperCase())}`,
      parameters,
      ...(r.body
        ? {
            requestBody: {
              required: false,
              content: {
                'application/json': {
                  schema: jsonSchema(r.body),
                  ...(r.examples ? { examples: exampleMap(r.examples) } : {}),
                },
              },
            },
          }
        : {}),
      responses: {
        [String(r.status)]: {
          description: 'Success',
          content: { 'application/json': { schema: r.response ?? {} } },
        },
        ...errors,
      },
    });
  }
  // Routes that answer for themselves: their success status and their errors, no body schema.
  const own: ExtraRoute[] = [...routes.filter((r) => r.raw), ...extra];
  for (const e of own) {
    const parameters: Record<string, unknown>[] = [...params(e.url, e.pathParams), ...queryParams(e.query)];
    if (e.auth === 'signature')
      parameters.push({
        name: 'Event-Signature',
        in: 'header',
        required: true,
        description: '{keyId}/SHA256/{hex HMAC of the raw body}, several comma-separated',
        schema: { type: 'string' },
      });
    add(e.method, e.url, {
      summary: e.summary,
      tags: [e.tag],
      operationId: `${e.method.toLowerCase()}${e.url.replace(/[/:.-]+(\w)/g, (_, c: string) => c.toUpperCase())}`,
      ...(e.auth === 'bearer' ? {} : { security: [] }),
      ...(parameters.length > 0 ? { parameters } : {}),
      responses: {
        [String(e.status)]: { description: 'Success' },
        // Every route refuses control characters in its query (src/http/input.ts).
        '400': errors['400'],
        ...(e.auth === 'bearer' ? { '401': errors['401'], '403': errors['403'] } : {}),
        ...(e.database === false ? {} : { '503': unavailable }),
        ...Object.fromEntries(Object.entries(e.errors ?? {}).map(([code, d]) => [code, error(d)])),
      },
    });
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'rebill admin API',
      version: '0.1.0',
      description:
        'Mandates, charges, runs, payments, events, webhooks, forecasts and reports of one rebill installation. Amounts are integer minor units with an ISO-4217 currency; instants are ISO-8601 UTC.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/', description: 'The admin server itself (REBILL_ADMIN_ADDR)' }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Event: eventSchema },
    },
    security: [{ bearer: [] }],
    paths,
    // What rebill POSTs to a merchant's endpoint (docs/events.md).
    webhooks: {
      event: {
        post: {
          operationId: 'eventDelivery',
          summary: 'An event delivered to a webhook endpoint (at least once, in order per mandate)',
          parameters: [
            { name: 'Rebill-Event-Id', in: 'header', required: true, schema: { type: 'string' } },
            {
              name: 'Rebill-Signature',
              in: 'header',
              required: true,
              description:
                't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>; two v1 entries during a secret rotation',
              schema: { type: 'string' },
            },
          ],
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['id', 'type', 'createdAt', 'data'],
                  properties: {
                    id: eventSchema.properties.id,
                    type: eventSchema.properties.type,
                    createdAt: eventSchema.properties.createdAt,
                    data: eventSchema.properties.data,
                  },
                },
              },
            },
          },
          responses: { '200': { description: 'Any 2xx within 10 s: delivered. Anything else is retried.' } },
        },
      },
    },
  };
}
