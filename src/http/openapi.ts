import { z } from 'zod';
import { EVENT_TYPES, eventTypes } from '../events/types.ts';
import type { RouteDef } from './routes.ts';

/** A route outside the admin table (health, metrics, the webhook, this document). */
export interface ExtraRoute {
  method: 'GET' | 'POST';
  url: string;
  summary: string;
  tag: string;
  auth: 'bearer' | 'none' | 'signature';
  status: number;
}

const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z]+)/g, '{$1}');

function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const out = z.toJSONSchema(schema, { unrepresentable: 'any', io: 'input' }) as Record<string, unknown>;
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
    id: { type: 'string', description: 'A monotonic integer: the cursor of GET /v1/events?after=' },
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
  const params = (url: string) =>
    [...url.matchAll(/:([A-Za-z]+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'integer', minimum: 1 },
    }));
  const errors = {
    '400': {
      description: 'Invalid request (the message names the field)',
      content: { 'application/json': { schema: errorSchema } },
    },
    '401': { description: 'Missing bearer token', content: { 'application/json': { schema: errorSchema } } },
    '403': { description: 'Wrong bearer token', content: { 'application/json': { schema: errorSchema } } },
    '404': { description: 'Not found', content: { 'application/json': { schema: errorSchema } } },
    '409': {
      description: 'Not allowed in the current state (amount limits, states)',
      content: { 'application/json': { schema: errorSchema } },
    },
    '422': {
      description: 'Idempotency-Key reused for a different request',
      content: { 'application/json': { schema: errorSchema } },
    },
  };
  for (const r of routes) {
    const parameters: Record<string, unknown>[] = params(r.url);
    if (r.query) {
      const q = jsonSchema(r.query) as { properties?: Record<string, unknown> };
      for (const [name, schema] of Object.entries(q.properties ?? {}))
        parameters.push({ name, in: 'query', required: false, schema });
    }
    if (r.method === 'POST')
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
            requestBody: { required: false, content: { 'application/json': { schema: jsonSchema(r.body) } } },
          }
        : {}),
      responses: {
        [String(r.status)]: { description: 'Success', content: { 'application/json': { schema: {} } } },
        ...errors,
      },
    });
  }
  for (const e of extra) {
    add(e.method, e.url, {
      summary: e.summary,
      tags: [e.tag],
      operationId: `${e.method.toLowerCase()}${e.url.replace(/[/:.-]+(\w)/g, (_, c: string) => c.toUpperCase())}`,
      ...(e.auth === 'bearer' ? {} : { security: [] }),
      ...(e.auth === 'signature'
        ? {
            parameters: [
              {
                name: 'Event-Signature',
                in: 'header',
                required: true,
                description: '{keyId}/SHA256/{hex HMAC of the raw body}, several comma-separated',
                schema: { type: 'string' },
              },
            ],
          }
        : {}),
      responses: { [String(e.status)]: { description: 'Success' } },
    });
  }
  return {
    openapi: '3.1.0',
    info: { title: 'rebill admin API', version: '0.1.0' },
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
