/**
 * Worldpay's Card Payments v7 OpenAPI file, loaded for ajv with its errata applied (one loader
 * for test/gateways/worldpay-v7-openapi.test.ts and worldpay-v7-requests.test.ts): validators of
 * each operation's request and answer bodies.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import { addFormats } from './ajv.ts';
import { sharedFile } from './shared.ts';

export const specFile = sharedFile('worldpay-openapi/worldpay-card-payments-openapi.yaml');
export const haveSpec = existsSync(specFile);

export type Json = Record<string, unknown>;

/**
 * Errata of the published file, applied before validating; returns what was changed:
 * - `currency` is 3 characters long *and* matches `^[A-Z]$` (one character): no value passes,
 *   so the pattern is read as `^[A-Z]{3}$`;
 * - patterns that are not valid regular expressions (narrative lines: an unescaped `[]` in a
 *   class) are dropped, as Worldpay replaces unsupported characters instead of refusing;
 * - `oneOf` + `discriminator.mapping` (which ajv does not implement, and whose branches all
 *   match when they differ only by the discriminator's value) become "if the property has this
 *   value, then that schema".
 */
function applyErrata(node: unknown, fixed: string[], at = '#'): void {
  if (node === null || typeof node !== 'object') return;
  const o = node as Json;
  if (o.pattern === '^[A-Z]$' && o.minLength === 3 && o.maxLength === 3) {
    o.pattern = '^[A-Z]{3}$';
    fixed.push(`${at} currency`);
  }
  if (typeof o.pattern === 'string') {
    try {
      new RegExp(o.pattern, 'u');
    } catch {
      delete o.pattern;
      fixed.push(`${at} pattern`);
    }
  }
  const discriminator = o.discriminator as
    | { propertyName: string; mapping?: Record<string, string> }
    | undefined;
  if (Array.isArray(o.oneOf) && discriminator?.mapping) {
    const prop = discriminator.propertyName;
    const mapping = discriminator.mapping;
    delete o.oneOf;
    delete o.discriminator;
    o.required = [...((o.required as string[] | undefined) ?? []), prop];
    o.properties = { ...((o.properties as Json | undefined) ?? {}), [prop]: { enum: Object.keys(mapping) } };
    o.allOf = Object.entries(mapping).map(([value, ref]) => ({
      if: { properties: { [prop]: { const: value } }, required: [prop] },
      // biome-ignore lint/suspicious/noThenProperty: JSON Schema's own keyword
      then: { $ref: ref },
    }));
    fixed.push(`${at} discriminator`);
  }
  for (const [k, v] of Object.entries(o)) applyErrata(v, fixed, `${at}/${k}`);
}

export function loadSpec() {
  const doc = parse(readFileSync(specFile, 'utf8')) as Json;
  const errata: string[] = [];
  applyErrata(doc, errata);
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  // The file names the UUID format by its RFC (3DS transaction ids).
  ajv.addFormat('RFC 4122 UUID', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
  const id = 'spec:card-payments-v7';
  ajv.addSchema({ $id: id, components: doc.components });
  const paths = doc.paths as Record<string, Record<string, Json>>;
  const compiled = new Map<string, ValidateFunction>();
  const compile = (key: string, schema: unknown): ValidateFunction => {
    let validate = compiled.get(key);
    if (!validate) {
      validate = ajv.compile(
        JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', `"${id}#/components/`)),
      );
      compiled.set(key, validate);
    }
    return validate;
  };
  const operation = (template: string, method: string) => {
    const op = paths[template]?.[method];
    if (!op) throw new Error(`${method} ${template} is not in the file`);
    return op;
  };
  return {
    errata,
    /** The operation's path template a request hits (the most specific one), or undefined. */
    find(method: string, requestPath: string): string | undefined {
      const pathOnly = requestPath.split('?')[0]!;
      let best: string | undefined;
      for (const [template, item] of Object.entries(paths)) {
        if (!item[method.toLowerCase()]) continue;
        // Link data is opaque and may itself hold '/': `{param}` matches the rest of the path.
        const pattern = new RegExp(
          `^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '.+')}$`,
        );
        if (!pattern.test(pathOnly)) continue;
        if (!best || template.split('{')[0]!.length > best.split('{')[0]!.length) best = template;
      }
      return best;
    },
    /** The validator of an answer's body for one operation and status. */
    response(template: string, method: string, status: number): ValidateFunction {
      const responses = operation(template, method).responses as Record<
        string,
        { content?: Record<string, Json> }
      >;
      const content = responses[String(status)]?.content;
      if (!content) throw new Error(`${method} ${template} defines no ${status}`);
      return compile(`${template} ${method} ${status}`, Object.values(content)[0]!.schema);
    },
    /** The validator of an operation's request body. */
    request(template: string, method: string): ValidateFunction {
      const body = operation(template, method).requestBody as { content: Record<string, Json> };
      return compile(`${template} ${method} request`, Object.values(body.content)[0]!.schema);
    },
    /** The media type the file gives an operation's answer. */
    mediaTypes(template: string, method: string, status: number): string[] {
      const responses = operation(template, method).responses as Record<
        string,
        { content?: Record<string, Json> }
      >;
      return Object.keys(responses[String(status)]?.content ?? {});
    },
  };
}
