import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rebillBin } from '../support/cli.ts';
import { type TestDatabase, testDatabase } from '../support/db.ts';

const README = new URL('../../README.md', import.meta.url);

/** The shell commands of the README's local walkthrough: every `sh` block between its markers. */
function walkthroughScript(readme: string): string {
  const section = /<!-- walkthrough -->([\s\S]*?)<!-- \/walkthrough -->/.exec(readme)?.[1];
  if (section === undefined) throw new Error('README.md has no <!-- walkthrough --> section');
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]).join('\n');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * "Try it locally in five minutes", run as the README writes it: its commands, extracted by the
 * marker, in bash in an empty directory where `npx rebill` finds this checkout's CLI, against
 * the sandbox they start. Only the two ports are swapped for free ones (another test may hold
 * 8787 or 8080); on a PostgreSQL server the database is a fresh one of this file's.
 */
describe('the README walkthrough', () => {
  let dir: string;
  let t: TestDatabase | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rebill-walkthrough-'));
    mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
    symlinkSync(rebillBin, join(dir, 'node_modules', '.bin', 'rebill'));
    if (process.env.DATABASE_URL) t = await testDatabase({ maxConnections: 2 });
  });
  afterAll(async () => {
    await t?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs as written: sandbox, link, mandate, run, charge, API and console', {
    timeout: 420_000,
  }, async () => {
    const [sandboxPort, adminPort] = [await freePort(), await freePort()];
    const script = walkthroughScript(readFileSync(README, 'utf8'))
      .replaceAll('8787', String(sandboxPort))
      .replaceAll('8080', String(adminPort));
    expect(script).toContain('npx rebill mandates create');
    const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], {
      cwd: dir,
      detached: true,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: dir,
        // npx finds the CLI in ./node_modules/.bin: it has no reason to ask the registry
        npm_config_offline: 'true',
        npm_config_update_notifier: 'false',
        // the README's default admin address, on the free port
        REBILL_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
        ...(t?.url ? { DATABASE_URL: t.url } : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    try {
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code, `${stdout}\n${stderr}`).toBe(0);
      // the mandate, the run that charged it and the charge list, in major units
      expect(stdout).toMatch(/ada/);
      expect(stdout).toMatch(/: completed in /);
      expect(stdout).toMatch(/29\.99 GBP\s+(authorized|settling|settled)/);
      // the API's answer, with the token the walkthrough set
      const api = JSON.parse(stdout.slice(stdout.lastIndexOf('{"items"'))) as {
        items: { customerRef: string; status: string }[];
      };
      expect(api.items.map((m) => [m.customerRef, m.status])).toEqual([['ada', 'active']]);
      // the console it points to (`npm install` builds it; a checkout without dist/ says so)
      const ui = await request(`http://127.0.0.1:${adminPort}/ui`);
      const page = await ui.body.text();
      if (existsSync(new URL('../../dist/ui/app.js', import.meta.url))) {
        expect(ui.statusCode).toBe(200);
        expect(page).toMatch(/<html/i);
      } else expect([ui.statusCode, page]).toEqual([503, expect.stringContaining('npm run build')]);
      if (t) {
        const charges = await t.database.rows<{ state: string }>(sql`select state from charges`);
        expect(charges.map((c) => c.state)).toEqual(['settling']);
      }
    } finally {
      // the sandbox and the admin server the walkthrough left running in the background
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {}
    }
  });
});
