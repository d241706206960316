/**
 * HTTP calls the benchmark makes: to the gateway's public API as an app would, and straight to
 * a simulator as the gateway would (the baseline). Plain `fetch`, so undici's keep-alive
 * defaults apply to both sides alike.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { PROVIDERS } from '../src/providers/registry.js';
import type { StackAddresses } from './bench-stack.js';

/** The fields of a gateway Task the benchmark reads. */
export interface TaskView {
  id: string;
  status: string;
  provider: string | null;
  provider_task_id: string | null;
  /** ISO 8601 with milliseconds. */
  created_at: string;
  completed_at: string | null;
}

export const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

/** Sends a request and reads the whole answer; JSON when it parses. */
async function exchange(url: string, init: RequestInit): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // Not JSON (metrics text, an error page): keep the text.
  }
  return { status: response.status, body };
}

export class GatewayClient {
  private readonly headers: Record<string, string>;

  constructor(private readonly addresses: StackAddresses) {
    this.headers = { authorization: `Bearer ${addresses.gatewayKey}` };
  }

  /** `POST /v1/videos`, reading the answer as text only (what the load phases time). */
  async createStatus(bodyText: string): Promise<number> {
    const response = await fetch(`${this.addresses.gatewayUrl}/v1/videos`, {
      method: 'POST',
      headers: { ...this.headers, 'content-type': 'application/json' },
      body: bodyText,
    });
    await response.text();
    return response.status;
  }

  /** `POST /v1/videos`; throws unless the gateway accepted the task. */
  async create(body: unknown): Promise<TaskView> {
    const answer = await exchange(`${this.addresses.gatewayUrl}/v1/videos`, {
      method: 'POST',
      headers: { ...this.headers, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (answer.status !== 202) throw new Error(`create answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    return answer.body as TaskView;
  }

  /** `GET /v1/videos/{id}`, reading the answer as text only. */
  async getStatus(id: string): Promise<number> {
    const response = await fetch(`${this.addresses.gatewayUrl}/v1/videos/${id}`, { headers: this.headers });
    await response.text();
    return response.status;
  }

  /** `GET /v1/videos/{id}?wait=N`: the task once terminal, or as it is after N seconds. */
  async waitFor(id: string, seconds: number): Promise<TaskView> {
    const answer = await exchange(`${this.addresses.gatewayUrl}/v1/videos/${id}?wait=${seconds}`, { headers: this.headers });
    if (answer.status !== 200) throw new Error(`GET ${id} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    return answer.body as TaskView;
  }

  /** `GET /metrics` as samples. */
  async metrics(): Promise<MetricSample[]> {
    const answer = await exchange(`${this.addresses.gatewayUrl}/metrics`, {});
    if (answer.status !== 200 || typeof answer.body !== 'string') throw new Error(`/metrics answered ${answer.status}`);
    return parsePrometheusText(answer.body);
  }

  /**
   * Waits until the gateway has nothing submitting, tracked or queued, so that the next phase
   * is not measured against the tail of the last one. A slow gateway (a profiled one, a busy
   * machine) is waited for as long as its backlog shrinks; one whose backlog stays put for
   * `stallMs` has tasks that do not move, and the benchmark stops there.
   */
  async waitUntilIdle(stallMs = 30_000): Promise<void> {
    let least = Number.POSITIVE_INFINITY;
    let movedAt = Date.now();
    for (;;) {
      const samples = await this.metrics();
      const busy = samples
        .filter((sample) => sample.name === 'kling_gateway_tasks_in_flight' || sample.name === 'kling_gateway_tasks_queued')
        .reduce((sum, sample) => sum + sample.value, 0);
      if (busy === 0) return;
      if (busy < least) {
        least = busy;
        movedAt = Date.now();
      } else if (Date.now() - movedAt > stallMs) {
        throw new Error(`the gateway still had ${busy} tasks in flight or queued, none of them finished in the last ${stallMs / 1000} s`);
      }
      await sleep(200);
    }
  }
}

/** Calls one simulator directly with the provider's own auth headers. */
export class SimulatorClient {
  /** The provider's own auth headers for this simulator's key. */
  readonly authHeaders: Record<string, string>;
  private readonly baseUrl: string;

  constructor(addresses: StackAddresses, providerId: string) {
    const simulator = addresses.simulators[providerId];
    const provider = PROVIDERS.find((candidate) => candidate.id === providerId);
    if (!simulator || !provider) throw new Error(`no simulator for provider ${providerId}`);
    this.baseUrl = simulator.baseUrl;
    this.authHeaders = provider.authHeaders(simulator.apiKey);
  }

  /** `POST <path>` with a JSON body given as text; reads the answer as text. */
  async postStatus(path: string, bodyText: string): Promise<number> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method: 'POST',
      headers: { ...this.authHeaders, 'content-type': 'application/json' },
      body: bodyText,
    });
    await response.text();
    return response.status;
  }

  /** `GET <path>`; reads the answer as text. */
  async getStatus(path: string): Promise<number> {
    const response = await fetch(`${this.baseUrl}${path}`, { headers: this.authHeaders });
    await response.text();
    return response.status;
  }
}

/** One line of the Prometheus text exposition. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Enough of the exposition format for counters and gauges. */
export function parsePrometheusText(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const label of (match[2] ?? '').matchAll(LABEL)) labels[label[1] ?? ''] = label[2] ?? '';
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return samples;
}

/** Sum of a metric's samples whose labels include `where`. */
export function sumMetric(samples: readonly MetricSample[], name: string, where: Record<string, string> = {}): number {
  return samples
    .filter((sample) => sample.name === name && Object.entries(where).every(([key, value]) => sample.labels[key] === value))
    .reduce((sum, sample) => sum + sample.value, 0);
}
