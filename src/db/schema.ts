/**
 * The database schema, one module for everybody to import: the tables live by area in
 * `src/db/schema/` (columns.ts holds the column helpers they share). One schema for PostgreSQL
 * and PGlite; drizzle-kit reads it from here (drizzle.config.ts).
 */
export * from './schema/audit.ts';
export * from './schema/charges.ts';
export * from './schema/disputes.ts';
export * from './schema/events.ts';
export * from './schema/mandates.ts';
export * from './schema/operations.ts';
export * from './schema/paypal.ts';
