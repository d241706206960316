/**
 * What an S3 refusal carries out of the storage: S3 answers a bad signature with the request it
 * received (the access key id, the canonical request with its `x-amz-security-token` header, the
 * signature), and the SDK puts each of those fields on the error it throws, which the gateway logs
 * whole. Credentials from the SDK's own chain are no configured secret the log scrubber knows, so
 * the error must not carry them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { S3Storage } from '../../src/storage/s3-storage.js';

const CANARY = 'LEAKCANARY';
const CREDENTIALS = { accessKeyId: `AKID${CANARY}01`, secretAccessKey: `sk-${CANARY}-secret`, sessionToken: `st-${CANARY}-token` };

let server: Server;
let endpoint: string;

beforeAll(async () => {
  // Answers every request as S3 answers a signature it does not accept, quoting what it was sent.
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const authorization = req.headers.authorization ?? '';
      const keyId = /Credential=([^/]+)/.exec(authorization)?.[1] ?? '';
      const signature = /Signature=(\w+)/.exec(authorization)?.[1] ?? '';
      const token = String(req.headers['x-amz-security-token'] ?? '');
      res.writeHead(403, { 'content-type': 'application/xml', 'x-amz-request-id': 'req-1' });
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code>' +
          '<Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message>' +
          `<AWSAccessKeyId>${keyId}</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256\n20261204T000000Z\n20261204/us-east-1/s3/aws4_request\nabc</StringToSign>` +
          `<SignatureProvided>${signature}</SignatureProvided><StringToSignBytes>41 57 53</StringToSignBytes>` +
          `<CanonicalRequest>${req.method}\n${req.url}\n\nhost:${req.headers.host}\nx-amz-security-token:${token}\n\nhost;x-amz-security-token\nUNSIGNED-PAYLOAD</CanonicalRequest>` +
          `<CanonicalRequestBytes>${Buffer.from(token).toString('hex')}</CanonicalRequestBytes><RequestId>req-1</RequestId><HostId>host-1</HostId></Error>`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

async function storage(): Promise<S3Storage> {
  return S3Storage.open({ bucket: 'results', prefix: '', region: 'us-east-1', endpoint, forcePathStyle: true, ...CREDENTIALS, partSizeBytes: 5 * 1024 * 1024, queueSize: 1 });
}

/** The error as a log line shows it (pino's `err` serializer, then JSON). */
async function logged(failing: Promise<unknown>): Promise<string> {
  const error = await failing.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(Error);
  return JSON.stringify(pino.stdSerializers.err(error as Error));
}

it('a refused write, read or delete is logged with the store’s words and status, not the credentials it echoed', async () => {
  const s3 = await storage();
  try {
    const lines = [
      await logged(s3.write('acme/vid_1/0.mp4', Readable.from([Buffer.from('bytes')]), { contentType: 'video/mp4' })),
      await logged(s3.read('acme/vid_1/0.mp4')),
      await logged(s3.delete('acme/vid_1/0.mp4')),
    ];
    for (const line of lines) {
      expect(line).toContain('SignatureDoesNotMatch');
      expect(line).toContain('403');
      expect(line).not.toContain(CANARY);
      expect(line).not.toContain(Buffer.from(CREDENTIALS.sessionToken).toString('hex'));
    }
  } finally {
    await s3.close();
  }
});
