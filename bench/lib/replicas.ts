import { benchEnv } from './bench-run.ts';
import { verifyChains } from './chains.ts';
import { ownDatabase } from './database.ts';
import { commit, type Machine, machine } from './machine.ts';
import { seedDueMandates } from './seed.ts';
import { rebillCommand, startWorker } from './worker-cli.ts';

/**
 * Scale-out: K `rebill run` processes (the CLI bundle, as deployed) on one PostgreSQL against
 * one sandbox, all due mandates billed once between them. Run for K = 1 and then for the K asked,
 * each on a database of its own, so the ratio to K x one replica is measured in one invocation.
 */
export interface ReplicaPoint {
  replicas: number;
  charges: number;
  seconds: number;
  chargesPerSecond: number;
  /** The largest peak RSS of the replicas (`rebill run` processes), sampled from /proc. */
  peakRssBytes: number | null;
}

export interface ReplicasResult {
  kind: 'replicas';
  database: 'postgres' | 'pglite';
  mandates: number;
  latencyMs: number;
  concurrency: number;
  /** Charges each replica claims at once (`REBILL_BATCH_SIZE`). */
  batchSize: number;
  points: ReplicaPoint[];
  /** chargesPerSecond at K / (K x chargesPerSecond at 1), for each K > 1. */
  scaling: Record<string, number>;
  machine: Machine;
  commit: string;
  at: string;
}

async function once(
  sandboxUrl: string,
  serverUrl: string | undefined,
  p: { mandates: number; replicas: number; concurrency: number; batchSize: number; latencyMs: number },
  log: (line: string) => void,
): Promise<ReplicaPoint> {
  const own = await ownDatabase('rebill_replicas', serverUrl, { maxConnections: 4 });
  const cli = await rebillCommand('bundle');
  try {
    const chains = await verifyChains(sandboxUrl, p.mandates, { concurrency: 32 });
    const asOf = new Date('2026-03-01T00:00:00Z');
    await seedDueMandates(own.database, { mandates: p.mandates, chains, dueAt: asOf });
    const env = benchEnv(
      sandboxUrl,
      {
        concurrency: p.concurrency,
        maxInFlight: 2 * p.concurrency,
        batchSize: p.batchSize,
        latencyMs: p.latencyMs,
      },
      own.url,
    );
    if (own.url === undefined) {
      // Embedded: the one `rebill run` process opens the seeded directory once this one lets go.
      await own.database.close();
      env.REBILL_DATA_DIR = own.name;
    }
    const t0 = performance.now();
    const workers = Array.from({ length: p.replicas }, () =>
      startWorker(cli, ['run', '--at', asOf.toISOString(), '--json'], env),
    );
    const results = await Promise.all(workers.map((w) => w.done));
    const seconds = (performance.now() - t0) / 1000;
    let charges = 0;
    let peakRssBytes: number | null = null;
    for (const r of results) {
      if (r.peakRssBytes !== null) peakRssBytes = Math.max(peakRssBytes ?? 0, r.peakRssBytes);
      if (r.code !== 0) throw new Error(`a replica exited ${r.code}: ${r.stderr.slice(0, 500)}`);
      charges += (JSON.parse(r.stdout) as { counts: { authorized: number } }).counts.authorized;
    }
    if (charges !== p.mandates) throw new Error(`replicas authorized ${charges} of ${p.mandates}`);
    const rss = peakRssBytes === null ? '' : `, peak RSS ${(peakRssBytes / 2 ** 20).toFixed(0)} MiB`;
    log(`${p.replicas} replica(s): ${charges} charges in ${seconds.toFixed(1)}s${rss}`);
    return { replicas: p.replicas, charges, seconds, chargesPerSecond: charges / seconds, peakRssBytes };
  } finally {
    cli.dispose();
    await own.drop();
  }
}

export async function replicasBench(
  sandboxUrl: string,
  serverUrl: string | undefined,
  p: { mandates: number; replicas: number[]; concurrency: number; batchSize: number; latencyMs: number },
  log: (line: string) => void,
): Promise<ReplicasResult> {
  // Without DATABASE_URL, `--replicas 1` runs one embedded (PGlite) `rebill run` process.
  if (!serverUrl && p.replicas.some((k) => k > 1))
    throw new Error('--replicas K > 1 needs DATABASE_URL: several processes share one PostgreSQL');
  const points: ReplicaPoint[] = [];
  for (const k of [1, ...p.replicas.filter((k) => k > 1)])
    points.push(await once(sandboxUrl, serverUrl, { ...p, replicas: k }, log));
  const one = points[0]!.chargesPerSecond;
  const scaling: Record<string, number> = {};
  for (const pt of points.slice(1)) scaling[String(pt.replicas)] = pt.chargesPerSecond / (pt.replicas * one);
  return {
    kind: 'replicas',
    database: serverUrl ? 'postgres' : 'pglite',
    mandates: p.mandates,
    latencyMs: p.latencyMs,
    concurrency: p.concurrency,
    batchSize: p.batchSize,
    points,
    scaling,
    machine: machine(),
    commit: commit(),
    at: new Date().toISOString(),
  };
}
