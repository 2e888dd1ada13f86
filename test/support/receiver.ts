import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifySignature } from '../../src/events/deliver.ts';

/** One request a receiver got, whatever it answered. */
export interface Received {
  eventId: string;
  type: string;
  mandateId: number | null;
  body: string;
  /** The Rebill-Signature header as sent. */
  signature: string;
  signatureOk: boolean;
  answered: 'ok' | 'error' | 'timeout' | 'reset';
  at: number;
}

/**
 * A merchant's webhook receiver over loopback, as the README tells one to write it: it checks
 * `Rebill-Signature` against its secret(s) with a 5-minute tolerance, and dedupes on the event
 * id. `behave` decides each answer, so a test can make it fail, hang or drop the connection.
 */
export interface Receiver {
  url: string;
  received: Received[];
  secrets: string[];
  behave: (n: number) => 'ok' | 'error' | 'timeout' | 'reset';
  /** Wait this long before answering (a slow receiver keeps deliveries in flight). */
  delayMs: number;
  /** The body of an 'ok' answer. */
  answer: string;
  close(): Promise<void>;
}

export { verifySignature };

export async function startReceiver(timeoutMs = 60_000): Promise<Receiver> {
  let n = 0;
  const r: Receiver = {
    url: '',
    received: [],
    secrets: [],
    behave: () => 'ok',
    delayMs: 0,
    answer: '{"received":true}',
    close: async () => {},
  };
  const read = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
  const server: Server = createServer(async (req, res) => {
    const body = await read(req);
    const how = r.behave(n++);
    if (r.delayMs > 0) await new Promise((done) => setTimeout(done, r.delayMs));
    let parsed: { id?: string; type?: string; data?: { mandateId?: number; id?: number } } = {};
    try {
      parsed = JSON.parse(body);
    } catch {}
    const type = String(parsed.type);
    const mandateId = type.startsWith('mandate.')
      ? (parsed.data?.id ?? null)
      : (parsed.data?.mandateId ?? null);
    r.received.push({
      eventId: String(req.headers['rebill-event-id']),
      type,
      mandateId,
      body,
      signature: String(req.headers['rebill-signature'] ?? ''),
      signatureOk: verifySignature(
        String(req.headers['rebill-signature'] ?? ''),
        body,
        r.secrets,
        Date.now() / 1000,
      ),
      answered: how,
      at: Date.now(),
    });
    if (how === 'reset') return req.socket.destroy();
    if (how === 'timeout') {
      setTimeout(() => {
        if (!res.destroyed && res.socket) res.writeHead(200).end('too late');
      }, timeoutMs).unref();
      return;
    }
    if (how === 'error') return res.writeHead(500, { 'content-type': 'text/plain' }).end('receiver error');
    res.writeHead(200, { 'content-type': 'application/json' }).end(r.answer);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  r.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return r;
}
