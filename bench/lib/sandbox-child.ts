/**
 * The Worldpay sandbox in a process of its own, so the benchmark's peer does not share its
 * event loop or its CPU accounting. Started by `startSandboxChild`; prints one JSON line
 * ({"url": ...}) when listening and stops on SIGTERM.
 *   node --import tsx bench/lib/sandbox-child.ts <latencyMs>
 */
import { startSandbox } from '../../src/sandbox/server.ts';

const latencyMs = Number(process.argv[2] ?? 0);
// a short ledger: the benchmark reads its own counts, and a long one would grow the peer's heap
const sandbox = await startSandbox({ port: 0, latencyMs, ledgerLimit: 1000 });
process.stdout.write(`${JSON.stringify({ url: sandbox.url, pid: process.pid })}\n`);
const stop = async () => {
  await sandbox.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
// the parent holds our stdin: when it dies, however it dies, so do we
process.stdin.on('end', stop);
process.stdin.resume();
process.once('SIGINT', stop);
