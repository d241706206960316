import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { promtoolInstalled } from '../support/promtool.js';

const hasPromtool = promtoolInstalled();

describe('/metrics', () => {
  let gw: TestGateway;
  let exposition: string;
  beforeAll(async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'unavailable', status: 503 });
    const created = await gw.create({ model: 'kling-v3', prompt: 'metrics', duration: 5 });
    await gw.finish(created.body.id);
    const unfinished = await gw.create({ model: 'kling-v1', prompt: 'legacy metrics' });
    await gw.request('GET', '/v1/videos/missing');
    // A read held by `?wait` (here a finished task: answered at once) and a plain one.
    await gw.request('GET', `/v1/videos/${created.body.id}?wait=5`);
    await gw.request('GET', `/v1/videos/${created.body.id}`);
    // Content asked for of a task that does not exist, and of one whose output is not ready.
    await gw.request('GET', '/v1/videos/missing/content');
    await gw.request('GET', `/v1/videos/${unfinished.body.id}/content`);
    exposition = (await gw.request('GET', '/metrics', undefined, {}, null)).body;
  });
  afterAll(async () => {
    await gw.close();
  });

  it.skipIf(!hasPromtool)('passes promtool check metrics', () => {
    const output = execFileSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
    expect(output).toBe('');
  });

  it('gives every family HELP and TYPE, counters end in _total, and all names carry the prefix', () => {
    const families = new Map<string, string>();
    for (const line of exposition.split('\n')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (type) families.set(type[1]!, type[2]!);
    }
    expect(families.size).toBeGreaterThan(10);
    for (const [name, type] of families) {
      expect(name.startsWith('kling_gateway_'), name).toBe(true);
      expect(exposition).toContain(`# HELP ${name} `);
      if (type === 'counter') expect(name.endsWith('_total'), name).toBe(true);
      else expect(name.endsWith('_total'), name).toBe(false);
    }
  });

  it('times a read held by ?wait apart from plain reads, so a long poll does not read as a slow read', () => {
    expect(exposition).toMatch(/kling_gateway_http_request_duration_seconds_count\{method="GET",route="\/v1\/videos\/:id\?wait",status="200"\} 1\n/);
    expect(exposition).toMatch(/kling_gateway_http_request_duration_seconds_count\{method="GET",route="\/v1\/videos\/:id",status="200"\} \d+\n/);
  });

  it('counts requests, upstream calls, failovers, outcomes, circuit state, in-flight and polls', () => {
    expect(exposition).toMatch(/kling_gateway_http_requests_total\{method="POST",route="\/v1\/videos",status="202"\} 2/);
    expect(exposition).toMatch(/kling_gateway_http_requests_total\{method="GET",route="\/v1\/videos\/:id",status="404"\} 1/);
    // Timed by status as README lists it: a refusal's latency is not mixed with the answers'.
    expect(exposition).toMatch(/kling_gateway_http_request_duration_seconds_count\{method="POST",route="\/v1\/videos",status="202"\} 2/);
    expect(exposition).toMatch(/kling_gateway_http_request_duration_seconds_count\{method="GET",route="\/v1\/videos\/:id",status="404"\} 1/);
    expect(exposition).toMatch(/kling_gateway_upstream_requests_total\{provider="freepik",account="default",operation="submit",outcome="server_error"\} 1/);
    expect(exposition).toMatch(/kling_gateway_upstream_request_duration_seconds_count\{provider="kling3api",account="default",operation="submit",outcome="ok"\} 1/);
    expect(exposition).toMatch(/kling_gateway_failovers_total\{provider="freepik",reason="server_error"\} 1/);
    expect(exposition).toMatch(/kling_gateway_tasks_finished_total\{provider="kling3api",model="kling-v3",status="succeeded",error_code=""\} 1/);
    expect(exposition).toMatch(/kling_gateway_task_duration_seconds_count\{provider="kling3api",model="kling-v3",status="succeeded"\} 1/);
    expect(exposition).toMatch(/kling_gateway_circuit_state\{provider="freepik"\} 0/);
    expect(exposition).toMatch(/kling_gateway_tasks_in_flight\{provider="kling-legacy"\} 1/);
    expect(exposition).toMatch(/kling_gateway_tasks_queued 0/);
    expect(exposition).toMatch(/kling_gateway_polls_total\{provider="kling3api",outcome="succeeded"\} 1/);
  });

  it('counts content requests that were refused, by why, not only those answered with the file', () => {
    const refused = [...exposition.matchAll(/^kling_gateway_output_content_requests_total\{outcome="([a-z_]+)"\} (\d+)$/gm)].map(([, outcome, count]) => [outcome, Number(count)]);
    expect(refused).toContainEqual(['not_found', 1]);
    expect(refused.reduce((sum, [, count]) => sum + (count as number), 0)).toBe(2);
  });
});
