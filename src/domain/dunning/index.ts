/** The dunning policy: pure code, no database. Import from here. */
export * from './codes.ts';
export * from './config.ts';
export * from './ledger.ts';
export * from './policy.ts';
