/**
 * Chart colours by meaning: what was paid is green, what was refused red, whatever a series'
 * position (the browser test reads the same table to find the bars on the canvas).
 */
export const MEANING: Readonly<Record<string, string>> = {
  authorized: '#2f6f4f',
  recovered: '#6fb38a',
  refused: '#b3412f',
};
