import { connect, createServer, type Socket } from 'node:net';

/**
 * A database outage a test can cause without touching the PostgreSQL server others share: a TCP
 * proxy in front of it. `cut()` ends every connection through it and stops listening, so what
 * was connected sees its connection end and a new connection is refused, as when the server
 * goes away; `stall()` ends them too but keeps accepting connections it never answers, as a
 * host that has gone silent (a partition, a dead VM); `restore()` forwards again, on the same
 * port.
 */
export interface DatabaseProxy {
  /** The database URL through the proxy. */
  url: string;
  cut(): Promise<void>;
  stall(): void;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function databaseProxy(databaseUrl: string): Promise<DatabaseProxy> {
  const target = new URL(databaseUrl);
  const sockets = new Set<Socket>();
  let stalled = false;
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = createServer((client) => {
    track(client);
    if (stalled) return;
    const upstream = connect(Number(target.port || 5432), target.hostname || '127.0.0.1');
    track(upstream);
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        const a = server.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  const port = await listen(0);
  const dropAll = () => {
    for (const s of sockets) s.destroy();
  };
  const cut = () =>
    new Promise<void>((resolve) => {
      stalled = false;
      dropAll();
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });
  const url = new URL(databaseUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString(),
    cut,
    stall: () => {
      stalled = true;
      dropAll();
    },
    restore: async () => {
      dropAll();
      stalled = false;
      if (!server.listening) await listen(port);
    },
    close: cut,
  };
}
