/**
 * `downloadOutput` against a gateway that keeps copies of outputs (`storage.mode: copy`): the
 * stored copy streams from the gateway's content route, byte for byte what it stored; a copy that
 * is gone (deleted after retention, or missing from storage) is `OutputUnavailableError`, as a
 * provider's file host refusing is: the output can no longer be had, whatever the key or the task.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient, GatewayError, OutputUnavailableError, type Task } from '../../packages/client/src/index.js';
import { TENANT_KEY } from '../support/harness.js';
import { startLiveGateway, type LiveGateway } from '../support/live-gateway.js';

describe('downloadOutput of a stored copy', () => {
  let live: LiveGateway;
  let copies: string;
  let client: GatewayClient;
  let done: Task;

  beforeAll(async () => {
    copies = mkdtempSync(join(tmpdir(), 'kg-client-copies-'));
    live = await startLiveGateway({ storage: { mode: 'copy', filesystem: { path: copies } } });
    client = new GatewayClient({ baseUrl: live.url, apiKey: TENANT_KEY });
    const created = await client.createVideo({ model: 'kling-v3', prompt: 'a fox kept by the gateway', duration: 5 });
    done = await client.waitForVideo(created.id, { timeoutMs: 20_000 });
  });
  afterAll(async () => {
    await live.close();
    rmSync(copies, { recursive: true, force: true });
  });

  it('streams the copy the gateway stored, byte for byte', async () => {
    expect(done.outputs[0]).toMatchObject({ storage: 'stored' });
    const download = await client.downloadOutput(done.id);
    expect(download).toMatchObject({ source: 'gateway', size: done.outputs[0]!.bytes, contentType: 'video/mp4' });
    const bytes = Buffer.from(await new Response(download.body).arrayBuffer());
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(done.outputs[0]!.sha256);
  });

  it('resumes from a byte offset (`from`): the stored copy by HTTP Range, a file host that ignores Range by skipping', async () => {
    const whole = Buffer.from(await new Response((await client.downloadOutput(done.id)).body).arrayBuffer());
    const from = 1000;
    const rest = await client.downloadOutput(done.id, { from });
    expect(rest).toMatchObject({ source: 'gateway', start: from, size: whole.length - from, total: whole.length });
    expect(Buffer.from(await new Response(rest.body).arrayBuffer()).equals(whole.subarray(from))).toBe(true);

    // The provider's file host of the simulator answers a Range with the whole file (200).
    const passthrough = await startLiveGateway();
    try {
      const direct = new GatewayClient({ baseUrl: passthrough.url, apiKey: TENANT_KEY });
      const made = await direct.waitForVideo((await direct.createVideo({ model: 'kling-v3', prompt: 'a fox', duration: 5 })).id, { timeoutMs: 20_000 });
      const full = Buffer.from(await new Response((await direct.downloadOutput(made.id)).body).arrayBuffer());
      const tail = await direct.downloadOutput(made.id, { from });
      expect(tail).toMatchObject({ source: 'upstream', start: from, size: full.length - from, total: full.length });
      expect(Buffer.from(await new Response(tail.body).arrayBuffer()).equals(full.subarray(from))).toBe(true);
      // Past the end of a file whose host ignores Range: refused as the gateway's 416 is, not an empty download.
      await expect(direct.downloadOutput(made.id, { from: full.length })).rejects.toThrow(
        new RangeError(`output 0 of video ${made.id} has ${full.length} bytes: there is nothing from byte ${full.length} on`),
      );
    } finally {
      await passthrough.close();
    }

    await expect(client.downloadOutput(done.id, { from: whole.length })).rejects.toThrow(
      new RangeError(`output 0 of video ${done.id} has ${whole.length} bytes: there is nothing from byte ${whole.length} on`),
    );
    await expect(client.downloadOutput(done.id, { from: -1 })).rejects.toThrow(TypeError);
  });

  it('says the validator it was served with (the ETag), and resumes with it only while the file is the same one (If-Range)', async () => {
    const first = await client.downloadOutput(done.id);
    await first.body.cancel();
    expect(first.validator).toBe(`"${done.outputs[0]!.sha256}"`);
    const whole = done.outputs[0]!.bytes!;
    const from = 1000;
    const rest = await client.downloadOutput(done.id, { from, ifRange: first.validator! });
    expect(rest).toMatchObject({ start: from, size: whole - from, total: whole, validator: first.validator });
    await rest.body.cancel();
    // Begun on another file: the gateway answers with the whole file, which starts at byte 0 and is not cut.
    const other = await client.downloadOutput(done.id, { from, ifRange: '"another-file"' });
    expect(other).toMatchObject({ start: 0, size: whole, total: whole, validator: first.validator });
    expect(createHash('sha256').update(Buffer.from(await new Response(other.body).arrayBuffer())).digest('hex')).toBe(done.outputs[0]!.sha256);
  });

  it('a copy gone from storage is OutputUnavailableError naming the gateway, with its problem, not a GatewayError refusal', async () => {
    rmSync(copies, { recursive: true, force: true });
    const error = await client.downloadOutput(done.id).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OutputUnavailableError);
    expect(error).not.toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ id: done.id, index: 0, status: 410, problem: { status: 410 } });
    expect((error as Error).message).toMatch(new RegExp(`^output 0 of video ${done.id} cannot be downloaded: the gateway answered 410 \\(.+missing from storage`));
  });
});
