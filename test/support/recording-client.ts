import type { UpstreamClient, UpstreamRequest, UpstreamResponse } from '../../src/core/upstream/provider.js';

/** Keeps every call an adapter makes, and answers each with the same accepted answer. */
export class RecordingClient implements UpstreamClient {
  readonly sent: UpstreamRequest[] = [];
  constructor(private readonly answer: UpstreamResponse) {}
  async send(request: UpstreamRequest): Promise<UpstreamResponse> {
    this.sent.push(request);
    return this.answer;
  }
}
