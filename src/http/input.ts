import type { FastifyInstance } from 'fastify';
import { containsCardNumber, hasControlCharacter } from '../domain/card.ts';
import { ValidationError } from '../errors.ts';

/**
 * The admin API's first line against hostile input, before any route's schema sees it:
 *  - JSON bodies are measured for nesting depth by a linear scan of the raw text before
 *    `JSON.parse`, so a body of 100,000 brackets is a 400, not a stack overflow in whatever walks
 *    the parsed value next (idempotency hashing, a schema);
 *  - every string in the body, the query and the path is free of NUL and other control
 *    characters (PostgreSQL cannot store NUL in text; no rebill field carries a control
 *    character), and the query carries each parameter once;
 *  - a query value that passes for a card number is refused (a card number belongs in no
 *    query string, where proxies and access logs keep it).
 * Every refusal is a ValidationError naming the field, and none repeats the value.
 */
export const MAX_JSON_DEPTH = 32;

/** Nesting depth of a JSON text, counted without parsing it (brackets inside strings skipped). */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/** Parse a JSON request body, refusing one nested deeper than MAX_JSON_DEPTH before parsing. */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH)
    throw new ValidationError('body', `is nested deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    return JSON.parse(text);
  } catch {
    throw new ValidationError('body', 'is not valid JSON');
  }
}

/** Throws naming the first string (by its path) that carries a control character. */
export function assertNoControlCharacters(value: unknown, path: string): void {
  // Iterative: the depth is already bounded, but nothing here should recurse on input.
  const stack: { v: unknown; p: string }[] = [{ v: value, p: path }];
  while (stack.length > 0) {
    const { v, p } = stack.pop()!;
    if (typeof v === 'string') {
      if (hasControlCharacter(v))
        throw new ValidationError(p || 'body', 'must not contain control characters');
    } else if (Array.isArray(v)) {
      for (const [i, x] of v.entries()) stack.push({ v: x, p: p ? `${p}.${i}` : String(i) });
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        const kp = p ? `${p}.${k}` : k;
        if (hasControlCharacter(k))
          throw new ValidationError(p || 'body', 'a field name has control characters');
        stack.push({ v: x, p: kp });
      }
    }
  }
}

/** Install the body parser and the input hook on the admin server (not the webhook's scope). */
export function guardInput(app: FastifyInstance): void {
  // JSON only: a text/plain body is a 415, not a string that a schema then calls a bad body.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(String(body)));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addHook('preValidation', async (req) => {
    const query = (req.query ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(query)) {
      if (Array.isArray(v)) throw new ValidationError(k, 'give this parameter once');
      if (typeof v === 'string') {
        if (hasControlCharacter(v)) throw new ValidationError(k, 'must not contain control characters');
        if (containsCardNumber(v))
          throw new ValidationError(k, 'looks like a card number; card numbers never go in a query string');
      }
    }
    for (const [k, v] of Object.entries((req.params ?? {}) as Record<string, unknown>))
      if (typeof v === 'string' && hasControlCharacter(v))
        throw new ValidationError(k, 'must not contain control characters');
    if (req.body !== undefined && !Buffer.isBuffer(req.body)) assertNoControlCharacters(req.body, '');
  });
}
