/**
 * A file host on loopback for result-custody tests: serves files by path, and can be told to
 * fail, disappear or redirect, and counts what it was asked.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HostedFile {
  body: Buffer;
  contentType?: string;
  /** Answers before serving the file: a status (e.g. [503, 503]), or a whole answer (a CDN's error page sent with 200). */
  failFirst?: Array<number | { status: number; contentType: string; body: string }>;
  /** Answer this status every time instead (e.g. 404: the file is gone). */
  status?: number;
  /** Answer with a redirect to this URL. */
  redirectTo?: string;
  /** Bytes per write, so a large file arrives in many chunks. */
  chunkBytes?: number;
}

export class ResultServer {
  readonly files = new Map<string, HostedFile>();
  readonly requests: string[] = [];
  private server: Server | undefined;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      this.requests.push(path);
      const file = this.files.get(path);
      if (!file) {
        res.statusCode = 404;
        res.end('no such file');
        return;
      }
      if (file.redirectTo) {
        res.writeHead(302, { location: file.redirectTo }).end();
        return;
      }
      const first = file.failFirst?.shift();
      if (typeof first === 'object') {
        res.writeHead(first.status, { 'content-type': first.contentType, 'content-length': String(Buffer.byteLength(first.body)) }).end(first.body);
        return;
      }
      const status = first ?? file.status;
      if (status !== undefined) {
        res.statusCode = status;
        res.end(`status ${status}`);
        return;
      }
      res.writeHead(200, {
        ...(file.contentType ? { 'content-type': file.contentType } : {}),
        'content-length': String(file.body.length),
      });
      const step = file.chunkBytes ?? file.body.length;
      let offset = 0;
      const writeMore = () => {
        while (offset < file.body.length) {
          const chunk = file.body.subarray(offset, offset + step);
          offset += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', writeMore);
            return;
          }
        }
        res.end();
      };
      writeMore();
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Hosts `file` at `path`; returns its URL. */
  host(path: string, file: HostedFile): string {
    this.files.set(path, file);
    return `${this.url}${path}`;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
