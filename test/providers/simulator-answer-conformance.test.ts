/**
 * The simulators answer as the providers document: every answer they give — created tasks,
 * each status of the lifecycle, failed and refused tasks, and every fault they can be told to
 * produce — has a status code the provider's `openapi/<provider>.yaml` lists for that route and
 * a body that its schema describes (checked by Ajv, not by the adapters' readers). The adapter
 * drives each call, so these are the calls the gateway really makes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type {
  ProviderSimulator,
  SimulatedFault,
  UpstreamClient,
  UpstreamRequest,
  UpstreamResponse,
  VideoProvider,
} from '../../src/core/upstream/provider.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { resolvedBaseRequest } from '../support/capability-requests.js';
import { contractOf, type OpenApiContract } from '../support/openapi-contract.js';

const API_KEY = 'conformance-key';
const QUEUED_MS = 1_000;
const PROCESSING_MS = 4_000;

interface Exchange {
  request: UpstreamRequest;
  status: number;
  body: unknown;
}

/** Plain HTTP to the simulator that keeps every exchange; non-2xx answers throw, as upstream errors do. */
class CheckingClient implements UpstreamClient {
  readonly exchanges: Exchange[] = [];
  constructor(
    private readonly provider: VideoProvider,
    private readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  async send(request: UpstreamRequest): Promise<UpstreamResponse> {
    const url = new URL(this.baseUrl + request.path);
    for (const [name, value] of Object.entries(request.query ?? {})) url.searchParams.set(name, value);
    const response = await fetch(url, {
      method: request.method,
      headers: { ...this.provider.authHeaders(this.apiKey), ...(request.body ? { 'content-type': 'application/json' } : {}) },
      ...(request.body ? { body: JSON.stringify(request.body) } : {}),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // kept as text: the schema check will say it is not JSON of the documented shape
    }
    this.exchanges.push({ request, status: response.status, body });
    if (response.status >= 400) throw new Error(`HTTP ${response.status}`);
    return { status: response.status, headers: Object.fromEntries(response.headers), data: body };
  }
}

function problemsIn(contract: OpenApiContract, exchanges: readonly Exchange[]): string[] {
  return exchanges.flatMap(({ request, status, body }) =>
    contract.responseProblems(request, status, body).map((problem) => `${request.method} ${request.path} → ${problem}`),
  );
}

/**
 * A `503` may stand for a proxy or load balancer in front of the API, which any upstream can
 * have and the gateway fails over like any 5xx (SPEC §3). Where a provider's document lists no
 * 503 for the route (kling3api's table has none), a simulator's 503 is checked for its status
 * only; where it lists one, the body must fit it like any other answer.
 */
function isUndocumentedProxyAnswer(contract: OpenApiContract, { request, status, body }: Exchange): boolean {
  return status === 503 && contract.responseProblems(request, status, body).some((problem) => problem.includes('documents no 503'));
}

let attempts = 0;
/** A fresh task id and attempt key (the legacy API refuses a repeated `external_task_id`). */
function attempt() {
  attempts += 1;
  return { taskId: `task_${attempts}`, attemptKey: `task_${attempts}-1` };
}

const FAULT_KINDS: NonNullable<SimulatedFault['kind']>[] = [
  'rate_limited',
  'insufficient_credits',
  'server_error',
  'unavailable',
  'unauthorized',
  'invalid',
];

describe.each(PROVIDERS.map((provider) => [provider.id, provider] as const))('%s simulator', (id, provider) => {
  const contract = contractOf(id);
  const clock = new ManualClock();
  let simulator: ProviderSimulator;
  let baseUrl: string;

  beforeAll(async () => {
    simulator = provider.createSimulator({
      clock,
      apiKey: API_KEY,
      webhookSecret: 'conformance-webhook-secret',
      timing: { queuedMs: QUEUED_MS, processingMs: PROCESSING_MS },
    });
    baseUrl = await simulator.listen(0);
  });

  afterAll(async () => {
    await simulator.close();
  });

  /** Creates one task per offering and quality and polls it through its whole life. */
  async function lifecycle(client: CheckingClient) {
    const refs = [];
    for (const offering of provider.offerings) {
      for (const quality of offering.qualities) {
        const created = await provider.submit(resolvedBaseRequest(offering, quality), offering, { http: client, ...attempt() });
        refs.push(created.ref);
        await provider.getStatus(created.ref, { http: client });
      }
    }
    await clock.advance(QUEUED_MS);
    for (const ref of refs) await provider.getStatus(ref, { http: client });
    await clock.advance(PROCESSING_MS);
    return Promise.all(refs.map((ref) => provider.getStatus(ref, { http: client })));
  }

  it('answers every create and every status of a task lifecycle as documented, for every offering', async () => {
    const client = new CheckingClient(provider, baseUrl, API_KEY);
    const finals = await lifecycle(client);
    expect(finals.map((report) => report.status)).toEqual(finals.map(() => 'succeeded'));
    expect(client.exchanges.length).toBeGreaterThan(3 * provider.offerings.length);
    expect(problemsIn(contract, client.exchanges)).toEqual([]);
  });

  it.each(['fail', 'content_policy'] as const)('answers the status of a task that ends with %s as documented', async (outcome) => {
    const client = new CheckingClient(provider, baseUrl, API_KEY);
    const offering = provider.offerings[0]!;
    simulator.setOutcome(outcome, 1);
    const request = resolvedBaseRequest(offering);
    const created = await provider.submit(request, offering, { http: client, ...attempt() });
    await clock.advance(QUEUED_MS + PROCESSING_MS);
    const report = await provider.getStatus(created.ref, { http: client });
    expect(report.status).toBe('failed');
    expect(problemsIn(contract, client.exchanges)).toEqual([]);
  });

  it.each(FAULT_KINDS)('answers an injected %s fault on create (and on status, where it applies) as documented', async (kind) => {
    const client = new CheckingClient(provider, baseUrl, API_KEY);
    // Reading a task costs no credits: no provider answers a status read with "insufficient credits".
    const onStatusToo = kind !== 'insufficient_credits';
    const offering = provider.offerings[0]!;
    const request = resolvedBaseRequest(offering);
    const context = { http: client, ...attempt() };
    simulator.injectFault({ kind, on: 'submit' });
    await expect(provider.submit(request, offering, context)).rejects.toThrow();
    const created = await provider.submit(request, offering, context);
    if (onStatusToo) {
      simulator.injectFault({ kind, on: 'status' });
      await provider.getStatus(created.ref, { http: client }).catch(() => undefined);
    }
    const failed = client.exchanges.filter((exchange) => exchange.status >= 400);
    expect(failed.map((exchange) => exchange.request.method)).toEqual(onStatusToo ? ['POST', 'GET'] : ['POST']);
    if (kind === 'unavailable') expect(failed.map((exchange) => exchange.status)).toEqual(failed.map(() => 503));
    const documented = client.exchanges.filter((exchange) => kind !== 'unavailable' || !isUndocumentedProxyAnswer(contract, exchange));
    expect(problemsIn(contract, documented)).toEqual([]);
  });

  it('answers a wrong key and an unknown task as documented', async () => {
    const wrongKey = new CheckingClient(provider, baseUrl, 'not-the-key');
    const offering = provider.offerings[0]!;
    const request = resolvedBaseRequest(offering);
    await expect(provider.submit(request, offering, { http: wrongKey, ...attempt() })).rejects.toThrow();
    const client = new CheckingClient(provider, baseUrl, API_KEY);
    const created = await provider.submit(request, offering, { http: client, ...attempt() });
    const unknown = { ...created.ref, providerTaskId: `${created.ref.providerTaskId.slice(0, 3)}0000000000` };
    await provider.getStatus(unknown, { http: client }).catch(() => undefined);
    expect(wrongKey.exchanges.map((exchange) => exchange.status)).toEqual([401]);
    expect(client.exchanges.at(-1)?.status).toBeGreaterThanOrEqual(400);
    expect(problemsIn(contract, [...wrongKey.exchanges, ...client.exchanges])).toEqual([]);
  });
});
