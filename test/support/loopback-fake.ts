/** An upstream faked on loopback for a test: a plain node:http server whose `handle` answers every request. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { VideoProvider } from '../../src/core/upstream/provider.js';
import type { ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import { startTestGateway, type TestGateway, type TestGatewayOptions } from './harness.js';

export abstract class LoopbackFake {
  readonly server: Server;
  /** Where the fake listens, once `listen` resolved. */
  baseUrl = '';

  constructor() {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>;

  /** Listens on a free port of 127.0.0.1; resolves to the base URL. */
  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.baseUrl;
  }

  /** Closes the fake, dropping connections still open (a request it holds unanswered among them). */
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * A gateway whose only provider is `provider`, at `fake` (started listening here), with no
 * simulator: what the gateway sends reaches the fake alone.
 */
export async function gatewayAtFake(
  provider: VideoProvider,
  fake: LoopbackFake,
  endpoint: Omit<ProviderEndpoint, 'baseUrl' | 'simulated'>,
  options: Omit<TestGatewayOptions, 'providers' | 'endpoints' | 'simulators'> = {},
): Promise<TestGateway> {
  const baseUrl = await fake.listen();
  return startTestGateway({ ...options, providers: [provider], endpoints: new Map([[provider.id, { ...endpoint, baseUrl, simulated: false }]]), simulators: new Map() });
}
