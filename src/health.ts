// The worker's HTTP endpoints (`worker --metrics-port N`):
//   GET /metrics       Prometheus text format (src/metrics.ts)
//   GET /health/live   200 while the process runs (its event loop answers)
//   GET /health/ready  200 when the database answers a query within 2 s, else 503 with the reason
// Nothing else is served; the server only reads.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WorkerMetrics } from './metrics.js';

export interface HealthServerOptions {
  port: number;
  host?: string;
  metrics: WorkerMetrics;
  /** Resolves when the database answers, rejects with the reason otherwise. */
  checkDatabase: () => Promise<void>;
  readyTimeoutMs?: number;
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const readyTimeout = options.readyTimeoutMs ?? 2000;
  const server = http.createServer((req, res) => {
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/health/live':
        return send(200, 'live\n');
      case '/health/ready':
        withTimeout(options.checkDatabase(), readyTimeout, 'database').then(
          () => { options.metrics.setDatabaseUp(true); send(200, 'ready\n'); },
          (error: unknown) => {
            options.metrics.setDatabaseUp(false);
            send(503, `not ready: ${(error as Error).message ?? String(error)}\n`);
          });
        return;
      case '/metrics':
        options.metrics.text().then(
          (text) => send(200, text, options.metrics.registry.contentType),
          (error: unknown) => send(500, `metrics failed: ${(error as Error).message}\n`));
        return;
      default:
        return send(404, 'not found: /metrics, /health/live, /health/ready\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => { server.off('error', reject); resolve(); });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections?.();
    }),
  };
}
