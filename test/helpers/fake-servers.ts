// Servers that are not what DATABASE_URL promises: one that answers HTTP 400 and closes (a wrong
// port), one that accepts and never answers, and a TCP proxy to the real PostgreSQL that can drop
// every connection and refuse new ones (a database that goes away and comes back).
import net from 'node:net';

export interface FakeServer {
  port: number;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

function listen(server: net.Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function fake(handler: (s: net.Socket) => void): Promise<FakeServer> {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    n++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    handler(s);
  });
  return listen(server).then((port) => ({
    port,
    connections: () => n,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  }));
}

export const httpServer = () => fake((s) => s.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
export const silentServer = () => fake(() => {});

export interface Proxy {
  port: number;
  url(database: string): string;
  /** Drop every connection and refuse new ones (the port is closed). */
  cut(): Promise<void>;
  /** Accept connections again, on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function proxy(targetPort: number, targetHost = '127.0.0.1'): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  const make = () => net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => { client.destroy(); upstream.destroy(); });
      s.on('close', () => { sockets.delete(s); client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  let server = make();
  const port = await listen(server);
  const closeServer = () => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  return {
    port,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    cut: closeServer,
    restore: async () => {
      server = make();
      await listen(server, port);
    },
    close: closeServer,
  };
}
