/**
 * A small round-robin HTTP load balancer for `npm run cluster` and the deploy check, where no
 * nginx is installed. Each request goes to the next replica; a replica that refuses the
 * connection (stopped, restarting) is skipped and the request goes to the next one — safe,
 * since nothing reached it. Answers stream through (Server-Sent Events, `?wait=`).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Balancer {
  url: string;
  close(): Promise<void>;
}

/** Connection errors that prove the request never reached the replica. */
const NOT_REACHED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENOTFOUND']);

export async function startBalancer(upstreams: () => readonly string[], port = 0, host = '127.0.0.1'): Promise<Balancer> {
  let next = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const targets = upstreams();
      const start = next++;
      const tryTarget = (index: number) => {
        if (index >= targets.length) {
          res.writeHead(502, { 'content-type': 'application/problem+json' });
          res.end(JSON.stringify({ type: 'about:blank', title: 'Bad Gateway', status: 502, detail: 'no replica answered' }));
          return;
        }
        const target = new URL(targets[(start + index) % targets.length]!);
        const upstream = http.request(
          {
            host: target.hostname,
            port: target.port,
            method: req.method,
            path: req.url,
            headers: { ...req.headers, host: target.host, 'x-forwarded-for': req.socket.remoteAddress ?? '' },
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        upstream.on('error', (error: NodeJS.ErrnoException) => {
          if (!res.headersSent && NOT_REACHED.has(error.code ?? '')) {
            tryTarget(index + 1);
            return;
          }
          if (!res.headersSent) res.writeHead(502);
          res.end();
        });
        res.on('close', () => upstream.destroy());
        upstream.end(body);
      };
      tryTarget(0);
    });
  });
  server.keepAliveTimeout = 70_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
