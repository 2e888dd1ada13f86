/** Instants for tests that pin the clock: a day in milliseconds, and an ISO string as a Date. */

export const DAY = 86_400_000;

/** The instant an ISO string names: `at('2026-01-31T09:00:00Z')`. */
export const at = (iso: string): Date => new Date(iso);
