import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The bundled CLI under `root` (dist/rebill.mjs, built by scripts/build.js) as a file URL, or
 * null when there is none or any file under src/ or migrations/ changed after it was built:
 * a stale bundle must never run, so an edit falls back to the sources until the next build.
 */
export function freshBundle(root) {
  const base = fileURLToPath(root);
  let built;
  try {
    built = statSync(join(base, 'dist', 'rebill.mjs')).mtimeMs;
  } catch {
    return null;
  }
  for (const dir of ['src', 'migrations']) {
    for (const entry of readdirSync(join(base, dir), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && statSync(join(entry.parentPath, entry.name)).mtimeMs > built) return null;
    }
  }
  return new URL('dist/rebill.mjs', root).href;
}
