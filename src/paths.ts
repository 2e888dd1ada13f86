import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The first directory at or above this module that holds `relative` (a file), or undefined:
 * how rebill finds its migrations/ and the console's dist/ui, whether it runs from src/ under
 * tsx or from the bundle in dist/.
 */
export function findUpwards(relative: string): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, relative))) return dir;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}
