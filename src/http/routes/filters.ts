import { z } from 'zod';

/** A positive integer in a query string. */
export const int = z.coerce.number().int().positive();

/** Every value a filter can take, from the state tables: anything else is a 400 listing them. */
export const oneOf = (values: readonly string[]) =>
  z.string().refine((v) => values.includes(v), { message: `must be one of ${values.join(', ')}` });

/** An ISO-4217 currency filter. */
export const currency = z
  .string()
  .regex(/^[A-Z]{3}$/, 'must be an ISO-4217 code')
  .optional();

/** The body of an action that takes no options: nothing, or `{}`. */
export const emptyBody = z.object({}).strict();

/** A search text or customer ref prefix (src/db/search.ts). */
export const searchText = z.string().min(1, 'must not be empty').max(200);
