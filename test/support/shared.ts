import { existsSync } from 'node:fs';
import path from 'node:path';

const repoRoot = path.resolve(import.meta.dirname, '../..');

/**
 * A file (or folder) of the shared folder, which sits beside the main checkout (../shared) or
 * beside a worktree's parent (../../shared): the first of the two that exists, else the first,
 * so that a missing file's message names where it was looked for.
 */
export function sharedFile(relPath: string): string {
  const candidates = ['../shared', '../../shared'].map((dir) => path.resolve(repoRoot, dir, relPath));
  return candidates.find((file) => existsSync(file)) ?? candidates[0]!;
}
