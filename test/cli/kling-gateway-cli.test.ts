/**
 * The `kling-gateway` command against a gateway with its simulators, checked against the API's
 * own answers, with the exit codes the README lists. The main paths run as a user runs them: a
 * subprocess of `bin/kling-gateway.js` (what `npx kling-gateway` runs). The other commands run
 * in this process through the same entry point (`runCli`, with its output captured), since each
 * subprocess costs a second of tsx start-up.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loopbackServer } from '../support/raw-answer.js';
import { succeededTask } from '../support/fake-task-gateway.js';
import { GatewayClient, type Task } from '../../packages/client/src/index.js';
import type { CliIo } from '../../src/cli/cli-context.js';
import { runCliCaptured } from '../support/cli-run.js';
import { withClientTimerHeld } from '../support/client-timer.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { ManualClock } from '../../src/core/clock.js';
import { startTestGateway, TENANT_KEY } from '../support/harness.js';
import { eastWestKling3api } from '../support/multi-key-upstream.js';
import { startLiveGateway, type LiveGateway } from '../support/live-gateway.js';
import { REFUSED_PORT } from '../support/refused-port.js';
import { silentServer } from '../support/silent-server.js';

const BIN = fileURLToPath(new URL('../../bin/kling-gateway.js', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

// Each run starts a Node process with tsx (about a second on a busy machine): generous timeouts.
describe('kling-gateway CLI', { timeout: 90_000 }, () => {
  let live: LiveGateway;
  let api: GatewayClient;
  let workdir: string;

  /** Runs the CLI in a scratch directory, pointed at the test gateway through the environment. */
  function run(args: string[], env: Record<string, string | undefined> = {}, cwd = workdir): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, ...args], {
        cwd,
        env: { ...process.env, KLING_GATEWAY_URL: live.url, KLING_GATEWAY_API_KEY: TENANT_KEY, CI: process.env.CI, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** The same command in this process: same entry point, output captured. */
  function runHere(args: string[], env: Record<string, string | undefined> = {}, pause?: CliIo['pause']): Promise<Run> {
    return runCliCaptured(args, { env: { KLING_GATEWAY_URL: live.url, KLING_GATEWAY_API_KEY: TENANT_KEY, ...env }, ...(pause ? { pause } : {}) });
  }

  /**
   * `generate a fox` (and `args`) against a gateway that takes the first create and never answers
   * it, and answers every later one `status` with `problem` and `headers`. The first send's 1 s runs
   * out once the gateway has it; the resends' limits never run out (the timers stay still), so their
   * answers come back however slow the machine. The run, the keys sent, and the pauses between sends.
   */
  async function generateFirstLost(status: number, problem: Record<string, unknown>, headers: Record<string, string> = {}, args: string[] = []) {
    const keys: string[] = [];
    const waits: number[] = [];
    const gateway = await loopbackServer((req, res) => {
      req.resume();
      keys.push(String(req.headers['idempotency-key']));
      if (keys.length === 1) return;
      res.writeHead(status, { 'content-type': 'application/problem+json', ...headers }).end(JSON.stringify(problem));
    });
    try {
      const run = await withClientTimerHeld(async (runOut) => {
        const pause = async (ms: number) => void waits.push(ms);
        const running = runHere(['--request-timeout', '1', 'generate', 'a fox', '--model', 'kling-v3', ...args], { KLING_GATEWAY_URL: gateway.base }, pause);
        await vi.waitFor(() => expect(keys).toHaveLength(1), { timeout: 10_000, interval: 5 });
        await runOut(1_000);
        return running;
      });
      return { run, keys, waits };
    } finally {
      await gateway.close();
    }
  }

  beforeAll(async () => {
    live = await startLiveGateway();
    api = new GatewayClient({ baseUrl: live.url, apiKey: TENANT_KEY });
    workdir = mkdtempSync(join(tmpdir(), 'kling-cli-'));
  });
  afterAll(async () => {
    await live.close();
  });

  it('generate --wait shows progress, saves the video and prints the task the API has', async () => {
    const result = await run(['generate', 'a red fox running through fresh snow', '--model', 'kling-v3', '--duration', '5', '--wait']);
    expect(result.stderr).toMatch(/^(queued|processing) · freepik · 0:0\d · \$0\.56 \(56 credits, estimated\)$/m);
    expect(result.stderr).toMatch(/^succeeded · freepik · 0:0\d · \$0\.56/m);
    expect(result.code, result.stderr).toBe(0);
    const id = /^(vid_\S+)\s+succeeded$/m.exec(result.stdout)?.[1];
    expect(id).toBeDefined();
    // Named as soon as it is made, before the minutes of waiting: whatever ends the command (a
    // closed terminal, a killed job), the video it made can be followed again, not made again.
    expect(result.stderr.split('\n')[0]).toBe(`video ${id} created; if this command stops, follow it with: kling-gateway wait ${id}`);
    const task = await api.getVideo(id!);
    expect(task.status).toBe('succeeded');
    expect(result.stdout).toContain(`provider    freepik (task ${task.provider_task_id}, upstream ${task.provider_status})`);
    expect(result.stdout).toContain('cost        $0.56 (56 credits, estimated)');
    expect(result.stdout).toContain(`output 0    video ${task.outputs[0]!.url}`);
    expect(result.stdout).toMatch(/1 {2}\S+ \S+ +freepik +accepted/);
    expect(result.stderr).toMatch(new RegExp(`^saved ${id}\\.mp4 \\(\\d+(\\.\\d)? kB\\)$`, 'm'));
    const saved = readFileSync(join(workdir, `${id}.mp4`));
    const original = Buffer.from(await (await fetch(task.outputs[0]!.url)).arrayBuffer());
    expect(saved.equals(original)).toBe(true);
    expect(existsSync(join(workdir, `${id}.mp4.part`))).toBe(false);
  });

  it('--json prints exactly what the API answers, and list and get agree with it', async () => {
    const generated = await run(['--json', 'generate', '--model', 'kling-v3', '--prompt', 'json please', '--wait', '--no-download', '--metadata', 'run=cli']);
    expect(generated.code, generated.stderr).toBe(0);
    const task = JSON.parse(generated.stdout) as Task;
    expect(task).toMatchObject({ status: 'succeeded', metadata: { run: 'cli' }, request: { prompt: 'json please' } });
    expect(existsSync(join(workdir, `${task.id}.mp4`))).toBe(false);

    const [got, table] = await Promise.all([runHere(['get', task.id, '--json']), runHere(['list', '--limit', '5'])]);
    expect(JSON.parse(got.stdout)).toEqual(await api.getVideo(task.id));
    const page = await api.listVideos({ limit: 5 });
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID +STATUS +MODEL +OPERATION +PROVIDER +COST +CREATED$/);
    expect(lines.slice(1).map((line) => line.split(/\s+/)[0])).toEqual(page.data.map((row) => row.id));
  });

  it('list prints the command for the next page with the same filters, since a cursor holds none', async () => {
    for (let made = 0; made < 3; made += 1) await api.waitForVideo((await api.createVideo({ model: 'kling-v3', prompt: `page ${made}` })).id, { timeoutMs: 20_000 });
    const first = await runHere(['list', '--status', 'succeeded', '--provider', 'freepik', '--model', 'kling-v3', '--limit', '1']);
    const hint = /^more: kling-gateway (list .*)$/m.exec(first.stderr)?.[1];
    expect(hint).toMatch(/^list --status succeeded --provider freepik --model kling-v3 --limit 1 --cursor \S+$/);
    const next = await runHere([...hint!.split(' '), '--json']);
    const cursor = hint!.split(' ').at(-1)!;
    expect(JSON.parse(next.stdout)).toEqual(await api.listVideos({ status: 'succeeded', provider: 'freepik', model: 'kling-v3', limit: 1, cursor }));
    // Another model's tasks are not these; a model the API does not have is a command-line error.
    expect((await runHere(['list', '--model', 'kling-v1', '--json'])).stdout).toBe(`${JSON.stringify({ data: [], next_cursor: null }, null, 2)}\n`);
    const misspelt = await runHere(['list', '--model', 'kling-3']);
    expect([misspelt.code, misspelt.stderr.split('\n')[0]]).toEqual([2, expect.stringContaining("argument 'kling-3' is invalid. Allowed choices are kling-v3,")]);
    // So is a provider the API does not know, rather than "no tasks".
    const noSuchProvider = await runHere(['list', '--provider', 'freepick']);
    expect([noSuchProvider.code, noSuchProvider.stderr.split('\n')[0]]).toEqual([
      2,
      expect.stringContaining("argument 'freepick' is invalid. Allowed choices are freepik, kling3api, kling-legacy."),
    ]);
  });

  it('list --all --cursor follows every page from that cursor on, not from the start', async () => {
    for (let made = 0; made < 3; made += 1) await api.waitForVideo((await api.createVideo({ model: 'kling-v3', prompt: `resume ${made}` })).id, { timeoutMs: 20_000 });
    const first = await api.listVideos({ limit: 2 });
    expect(first.next_cursor).not.toBeNull();
    const rest: string[] = [];
    for (let cursor = first.next_cursor; cursor; ) {
      const page = await api.listVideos({ limit: 2, cursor });
      rest.push(...page.data.map((task) => task.id));
      cursor = page.next_cursor;
    }
    const resumed = await runHere(['list', '--all', '--limit', '2', '--cursor', first.next_cursor!, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect((JSON.parse(resumed.stdout) as { data: Task[] }).data.map((task) => task.id)).toEqual(rest);
  });

  it('list --all cut off after some pages says how to go on from the page it stopped at, with the same filters', async () => {
    // A gateway whose second page fails (a restart under the listing).
    let tasks: unknown[] = [];
    const gateway = await loopbackServer((req, res) => {
      req.resume();
      const cursor = new URL(req.url ?? '/', 'http://x').searchParams.get('cursor');
      if (cursor === null) {
        tasks = [succeededTask(gateway.base, 'vid_first')];
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: tasks, next_cursor: 'page-2' }));
        return;
      }
      res.writeHead(503, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503 }));
    });
    try {
      const cut = await runHere(['list', '--all', '--status', 'succeeded', '--limit', '1'], { KLING_GATEWAY_URL: gateway.base });
      expect(cut.code).toBe(ExitCode.unreachable);
      expect(cut.stderr).toContain('list --all stopped at a page the gateway did not give; go on from it with: kling-gateway list --all --status succeeded --limit 1 --cursor page-2\n');
    } finally {
      await gateway.close();
    }
  });

  it('quote, providers and models print tables that match the API', async () => {
    const [quote, providers, models] = await Promise.all([
      runHere(['quote', '--model', 'kling-v3', '--duration', '10', '--prompt', 'x']),
      runHere(['providers']),
      runHere(['models', '--model', 'kling-v3']),
    ]);
    const quoted = await api.quote({ model: 'kling-v3', duration: 10, prompt: 'x' });
    expect(quote.code).toBe(0);
    expect(quote.stdout).toContain(`try order: ${quoted.order.join(' → ')}`);
    for (const provider of quoted.providers) {
      const credits = provider.estimated_credits === null ? '—' : String(provider.estimated_credits);
      expect(quote.stdout).toMatch(new RegExp(`^ +${provider.order ?? '—'} +${provider.provider} +${provider.eligible ? 'yes' : 'no'} +${credits} `, 'm'));
    }
    const standing = await api.listProviders();
    for (const provider of standing.data) {
      expect(providers.stdout).toMatch(new RegExp(`^${provider.id} +${provider.mode} +${provider.circuit.replace('_', '-')} +\\d+/${provider.max_in_flight} `, 'm'));
    }
    // None of the three can cancel a task it accepted: `cancel` works on their tasks only while they
    // wait at the gateway (a task `queued` in the provider's own queue has been accepted).
    expect(providers.stderr).toContain(
      'cannot cancel a task they accepted (cancel works only while it waits at the gateway: queued, no provider task id): freepik, kling3api, kling-legacy',
    );
    expect(models.stdout).toMatch(/^kling-v3\n {2}text-to-video +freepik +pro,std +prompt\|multi_shot$/m);
  });

  it('quote with no provider able to serve the request exits 3, as the create would be refused, and still prints why', async () => {
    const args = ['quote', 'a fox', '--model', 'kling-v3', '--routing-max-credits', '1'];
    const [table, json] = await Promise.all([run(args), run(['--json', ...args])]);
    const quoted = await api.quote({ model: 'kling-v3', prompt: 'a fox', routing: { max_credits: 1 } });
    expect(quoted.order).toEqual([]);
    expect([table.code, json.code]).toEqual([ExitCode.refused, ExitCode.refused]);
    expect(table.stdout).toContain('try order: none');
    for (const provider of quoted.providers) expect(table.stdout).toMatch(new RegExp(`^ +— +${provider.provider} +no +`, 'm'));
    expect(table.stderr).toContain('no provider can serve this request as it is');
    expect(JSON.parse(json.stdout)).toEqual(quoted);
    // One that some provider can serve still exits 0.
    expect((await run(['quote', 'a fox', '--model', 'kling-v3'])).code).toBe(ExitCode.ok);
  });

  it('models shows what each operation needs, as the API lists it, in 100 columns; --upstream adds the upstream call', async () => {
    const [all, omni, upstream] = await Promise.all([
      runHere(['models']),
      runHere(['models', '--model', 'kling-v3-omni']),
      runHere(['models', '--model', 'kling-v3-omni', '--upstream']),
    ]);
    expect([all.code, omni.code, upstream.code]).toEqual([0, 0, 0]);
    expect(Math.max(...all.stdout.split('\n').map((line) => line.length))).toBeLessThanOrEqual(100);
    const lines = omni.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^MODEL \/ OPERATION +PROVIDER +QUALITIES +NEEDS$/);
    expect(lines[1]).toBe('kling-v3-omni');
    // Each operation once, its providers under it; a field required alone, then "one of" groups.
    expect(lines.slice(2, 6)).toEqual([
      expect.stringMatching(/^ {2}text-to-video +freepik +pro,std +prompt\|multi_shot$/),
      expect.stringMatching(/^ {4,}kling3api +pro,std +prompt$/),
      expect.stringMatching(/^ {2}image-to-video +freepik +pro,std +start_image_url, prompt\|multi_shot$/),
      expect.stringMatching(/^ {4,}kling3api +pro,std +prompt, start_image_url$/),
    ]);
    expect(omni.stderr).toContain('NEEDS: fields a request must carry; a|b: at least one of them');
    // Every provider of every operation is a row, and says what the API says it needs.
    const listed = await api.listModels();
    const omniEntry = listed.data.find((entry) => entry.model === 'kling-v3-omni')!;
    const served = omniEntry.operations.flatMap((operation) => operation.providers);
    expect(lines.length - 2).toBe(served.length);
    for (const [index, provider] of served.entries()) {
      const needs = [
        ...Object.entries(provider.fields).filter(([, rule]) => rule.required).map(([field]) => field),
        ...provider.required_one_of.map((group) => group.join('|')),
      ];
      expect(lines[index + 2]!.split(/ {2,}/).at(-1)).toBe(needs.join(', ') || '—');
    }
    const withUpstream = upstream.stdout.trimEnd().split('\n');
    expect(withUpstream[0]).toMatch(/^MODEL \/ OPERATION +PROVIDER +QUALITIES +NEEDS +UPSTREAM$/);
    expect(withUpstream.slice(2).map((line) => line.split(/ {2,}/).at(-1))).toEqual(served.map((provider) => provider.upstream));
  });

  it('lists the accounts of a provider that has several, under it', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const twoAccounts = await eastWestKling3api(clock, { east: 2, west: 4 });
    const upstream = twoAccounts.upstream;
    const gw = await startTestGateway({ clock, config: { providers: twoAccounts.providers } });
    try {
      await gw.create({ model: 'kling-v3', prompt: 'one kite', duration: 5 });
      const providers = await runHere(['providers'], { KLING_GATEWAY_URL: gw.url });
      expect(providers.code).toBe(0);
      expect(providers.stdout).toMatch(/^kling3api +live +closed +1\/6 /m);
      // Both were empty: the configured order decided.
      expect(providers.stdout).toMatch(/^ +└ east +closed +1\/2 +100% +1 /m);
      expect(providers.stdout).toMatch(/^ +└ west +closed +0\/4 +— +0 /m);
      expect(providers.stdout).not.toContain('└ default');
    } finally {
      await gw.close();
      await upstream.close();
    }
  });

  it('get and usage show what a provider left unanswered may also have billed, and --json passes cost.at_risk through', async () => {
    // Freepik's time limit is real time, and the first create must be answered within it: 2 s (the
    // tests' usual), not 300 ms, which a loaded machine's stalled event loop outlasted (the task
    // then failed over, and "nothing at risk yet" did not hold).
    const gw = await startTestGateway({ config: { routing: { failover_on_timeout: true }, providers: { freepik: { timeout_ms: 2_000 } } } });
    try {
      const here = { KLING_GATEWAY_URL: gw.url };
      await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'one kite', duration: 5 })).body.id);
      // Nothing at risk yet: no column for it.
      const plain = await runHere(['usage', '--group-by', 'provider'], here);
      expect(plain.stdout.split('\n')[0]).toMatch(/^PROVIDER +TASKS +SUCCEEDED +FAILED +SECONDS +CREDITS +COST$/);

      // Freepik takes the create and never answers; kling3api takes the task.
      gw.simulator('freepik').injectFault({ transport: 'hang' });
      const created = await gw.create({ model: 'kling-v3', prompt: 'two kites', duration: 5 });
      const done = await gw.finish(created.body.id);
      expect(done.provider).toBe('kling3api');
      const [human, json, plainTask] = await Promise.all([
        runHere(['get', done.id], here),
        runHere(['get', done.id, '--json'], here),
        runHere(['get', (await gw.request('GET', '/v1/videos?provider=freepik')).body.data[0].id], here),
      ]);
      expect(human.stdout).toMatch(/^ {2}cost +\$0\.40 \(400 credits\)$/m);
      expect(human.stdout).toMatch(/^ {2}at risk +may also have been billed by freepik: 56 credits, \$0\.56 \(estimate\)$/m);
      expect(JSON.parse(json.stdout)).toEqual((await gw.get(done.id)).body);
      expect(JSON.parse(json.stdout).cost.at_risk).toEqual([expect.objectContaining({ provider: 'freepik', credits: 56, currency_amount: 0.56 })]);
      expect(plainTask.stdout).not.toContain('at risk');

      const usage = await runHere(['usage', '--group-by', 'provider'], here);
      const [header, ...rows] = usage.stdout.trimEnd().split('\n');
      expect(header).toMatch(/^PROVIDER +TASKS +SUCCEEDED +FAILED +SECONDS +CREDITS +COST +AT RISK +CREDITS AT RISK +COST AT RISK$/);
      expect(rows).toEqual([
        // Freepik reports no charge: its credits and cost are the price list's, marked ~ as list marks them.
        expect.stringMatching(/^freepik +1 +1 +0 +5 +56~ +\$0\.56~ +1 +56 +\$0\.56$/),
        expect.stringMatching(/^kling3api +1 +1 +0 +5 +400 +\$0\.40 +0 +0 +\$0\.00$/),
      ]);
      expect(usage.stderr).toContain('AT RISK: tasks a provider may also have billed');
      expect(plain.stderr).not.toContain('AT RISK');
    } finally {
      await gw.close();
    }
  });

  it('usage shows the tasks still running and those canceled, which SUCCEEDED and FAILED leave out, once there are any', async () => {
    const gw = await startTestGateway();
    try {
      const here = { KLING_GATEWAY_URL: gw.url };
      await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'one kite', duration: 5 })).body.id);
      const plain = await runHere(['usage', '--group-by', 'model'], here);
      expect(plain.stdout.split('\n')[0]).toMatch(/^MODEL +TASKS +SUCCEEDED +FAILED +SECONDS +CREDITS +COST$/);
      // The only provider of kling-v2-6 is busy: one task waits in the queue, another is canceled there.
      gw.simulator('kling-legacy').injectFault({ status: 429, times: 1000 });
      const waiting = await gw.create({ model: 'kling-v2-6', prompt: 'waiting', duration: 5 });
      const canceled = await gw.create({ model: 'kling-v2-6', prompt: 'canceled', duration: 5 });
      expect((await gw.request('POST', `/v1/videos/${canceled.body.id}/cancel`)).status).toBe(200);
      const usage = await runHere(['usage', '--group-by', 'model'], here);
      const [header, ...rows] = usage.stdout.trimEnd().split('\n');
      expect(header).toMatch(/^MODEL +TASKS +SUCCEEDED +FAILED +CANCELED +RUNNING +SECONDS +CREDITS +COST$/);
      expect(rows).toEqual(
        expect.arrayContaining([expect.stringMatching(/^kling-v2-6 +2 +0 +0 +1 +1 +0 +0 +\$0\.00$/), expect.stringMatching(/^kling-v3 +1 +1 +0 +0 +0 +5 +56~ +\$0\.56~$/)]),
      );
      await gw.request('POST', `/v1/videos/${waiting.body.id}/cancel`);
    } finally {
      await gw.close();
    }
  });

  it('exits with a code that says what went wrong', async () => {
    const deadPort = REFUSED_PORT;

    // From the real process: the exit status itself, and nothing but errors on stderr.
    const [invalid, noKey, unreachable] = await Promise.all([
      run(['generate', '--model', 'kling-v3', '--end-image-url', 'https://example.com/end.png', '--prompt', 'x']),
      run(['list'], { KLING_GATEWAY_API_KEY: undefined }),
      run(['--url', `http://127.0.0.1:${deadPort}`, 'list']),
    ]);
    expect([invalid.code, invalid.stderr]).toEqual([3, expect.stringMatching(/Invalid request \(400\)[^\n]*\n {2}end_image_url: needs start_image_url/)]);
    expect([noKey.code, noKey.stderr]).toEqual([2, expect.stringContaining('KLING_GATEWAY_API_KEY')]);
    expect([unreachable.code, unreachable.stderr]).toEqual([9, expect.stringContaining('ECONNREFUSED')]);
    expect(`${invalid.stdout}${noKey.stdout}${unreachable.stdout}`).toBe('');

    // A value outside what the API takes is refused before anything is sent (the gateway at this
    // address would make it exit 9).
    const offline = { KLING_GATEWAY_URL: `http://127.0.0.1:${deadPort}` };
    const [tooLong, tooMany, waitTooLong] = await Promise.all([
      runHere(['generate', 'x', '--model', 'kling-v3', '--duration', '99'], offline),
      runHere(['list', '--limit', '500'], offline),
      runHere(['get', 'vid_x', '--wait', '61'], offline),
    ]);
    expect([tooLong.code, tooLong.stderr]).toEqual([2, expect.stringContaining("option '--duration <n>' argument '99' is invalid. must be 3–15.")]);
    expect([tooMany.code, tooMany.stderr]).toEqual([2, expect.stringContaining("option '--limit <n>' argument '500' is invalid. at most 100.")]);
    expect([waitTooLong.code, waitTooLong.stderr]).toEqual([2, expect.stringContaining("option '--wait <seconds>' argument '61' is invalid. at most 60.")]);
    // No model at all: a command-line error, not a refusal of the gateway listing every model.
    const noModel = await Promise.all([runHere(['generate', 'a fox'], offline), runHere(['quote', 'a fox'], offline)]);
    for (const missing of noModel) {
      expect([missing.code, missing.stderr]).toEqual([2, 'error: missing --model (or "model" in --file): `kling-gateway models` lists them\n']);
    }
    // A usage period the API would refuse: said here, naming the flag, with the forms it takes.
    const [yesterday, noZone, backwards] = await Promise.all([
      runHere(['usage', '--from', 'yesterday'], offline),
      runHere(['usage', '--to', '2026-11-22T10:00'], offline),
      runHere(['usage', '--from', '2026-12-01', '--to', '2026-11-01'], offline),
    ]);
    expect([yesterday.code, yesterday.stderr]).toEqual([
      2,
      'error: --from yesterday is not a date the gateway takes: give YYYY-MM-DD (00:00 UTC) or an ISO 8601 date-time with a zone, e.g. 2026-11-22T10:00+01:00\n',
    ]);
    expect([noZone.code, noZone.stderr]).toEqual([2, expect.stringContaining('--to 2026-11-22T10:00 is not a date the gateway takes')]);
    expect([backwards.code, backwards.stderr]).toEqual([2, 'error: --from 2026-12-01 must be before --to 2026-11-01\n']);
    // And every form the API takes goes through to it.
    const period = await runHere(['usage', '--from', '2026-11-01', '--to', '2026-11-22T10:00+01:00', '--json']);
    expect([period.code, period.stderr]).toEqual([0, '']);
    expect(JSON.parse(period.stdout)).toMatchObject({ from: '2026-11-01T00:00:00.000Z', to: '2026-11-22T09:00:00.000Z' });
    // A misspelt model would list nothing at all.
    const misspelt = await runHere(['models', '--model', 'kling-3'], offline);
    expect([misspelt.code, misspelt.stderr]).toEqual([2, expect.stringContaining("option '--model <model>' argument 'kling-3' is invalid. Allowed choices are kling-v3,")]);
    // An empty key (`--idempotency-key "$ORDER_ID"` with the variable unset) would go unsent.
    const noKeyAtAll = await runHere(['generate', 'x', '--model', 'kling-v3', '--idempotency-key', ''], offline);
    expect([noKeyAtAll.code, noKeyAtAll.stderr]).toEqual([
      2,
      expect.stringContaining("option '--idempotency-key <key>' argument '' is invalid. is empty: give a key, or leave the flag out for a random one."),
    ]);
    // A key the API refuses (it takes 1-255 visible ASCII characters: no space, no accent) is a
    // command-line error too, not a 400 after the create was sent.
    const [spaced, accented] = await Promise.all([
      runHere(['generate', 'x', '--model', 'kling-v3', '--idempotency-key', 'order 42'], offline),
      runHere(['generate', 'x', '--model', 'kling-v3', '--idempotency-key', 'café-42'], offline),
    ]);
    expect([spaced.code, spaced.stderr]).toEqual([2, expect.stringContaining("argument 'order 42' is invalid. holds “ ”: the gateway takes 1-255 visible ASCII characters")]);
    expect([accented.code, accented.stderr]).toEqual([2, expect.stringContaining("argument 'café-42' is invalid. holds “é”: the gateway takes 1-255 visible ASCII characters")]);

    const [unknown, badKey, badFlag, usage, cancel] = await Promise.all([
      runHere(['get', 'vid_doesnotexist']),
      runHere(['list'], { KLING_GATEWAY_API_KEY: 'wrong-key-123' }),
      runHere(['list', '--bogus']),
      runHere(['usage', '--group-by', 'colour']),
      runHere(['cancel', 'vid_x']),
    ]);
    expect([unknown.code, unknown.stderr]).toEqual([5, expect.stringContaining('video vid_doesnotexist not found')]);
    expect([badKey.code, badKey.stderr]).toEqual([4, expect.stringContaining('The gateway key is not valid')]);
    expect([badFlag.code, badFlag.stderr]).toEqual([2, expect.stringContaining("unknown option '--bogus'")]);
    // Checked against the API document's keys before anything is sent, as other flag values are.
    expect([usage.code, usage.stderr]).toEqual([2, expect.stringContaining("argument 'colour' is invalid. colour is not a group key: give provider,")]);
    // The gateway has cancel now: an unknown video is simply not found.
    expect([cancel.code, cancel.stderr]).toEqual([5, expect.stringContaining('video vid_x not found')]);
  });

  it('a request no provider can serve says why once per provider, not again on the first line', async () => {
    const refused = await runHere(['generate', 'x', '--model', 'kling-v1', '--operation', 'video-edit', '--video-url', 'https://example.com/a.mp4']);
    expect(refused.code).toBe(3);
    const lines = refused.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe('error: No provider can serve this request (422)');
    expect(lines.slice(1, 4).map((line) => line.split(':')[0])).toEqual(['  freepik', '  kling3api', '  kling-legacy']);
    expect(lines[4]).toMatch(/^ {2}request id: /);
  });

  it('a refusal whose detail is only its one field error says it once, at the field', async () => {
    // A gateway that keeps webhooks off private addresses, as a default configuration does.
    const guarded = await startLiveGateway({ webhooks: { allow_private_targets: false, max_attempts: 3, timeout_ms: 2_000 } });
    const refused = await runHere(['generate', 'x', '--model', 'kling-v3', '--webhook-url', 'http://10.0.0.1/hook'], { KLING_GATEWAY_URL: guarded.url }).finally(() =>
      guarded.close(),
    );
    const lines = refused.stderr.trimEnd().split('\n');
    expect([refused.code, lines.slice(0, -1)]).toEqual([
      3,
      ['error: Unprocessable request (422)', '  webhook_url: points at a private, loopback or link-local address (10.0.0.1)'],
    ]);
    expect(lines.at(-1)).toMatch(/^ {2}request id: /);
  });

  it('a reason about one field is said once, under that field, not again on its provider\'s line', async () => {
    const refused = await runHere(['generate', 'x', '--model', 'kling-v3-omni', '--operation', 'video-edit', '--duration', '4']);
    expect(refused.code).toBe(3);
    const lines = refused.stderr.trimEnd().split('\n');
    expect(lines.slice(0, -1)).toEqual([
      'error: No provider can serve this request (422)',
      '  duration: kling3api: duration is not supported for kling-v3-omni video-edit',
      '  video_url: kling3api: video_url is required for kling-v3-omni video-edit',
      '  freepik: does not serve video-edit with kling-v3-omni; it serves kling-v3-omni for text-to-video, image-to-video, reference-to-video',
      '  kling-legacy: does not serve video-edit with kling-v3-omni',
    ]);
    expect(lines.at(-1)).toMatch(/^ {2}request id: /);
  });

  it('download of an output the provider no longer has says so, and does not blame the key or the task id', async () => {
    const task = await api.waitForVideo((await api.createVideo({ model: 'kling-v3', prompt: 'kept nowhere' })).id, { timeoutMs: 20_000 });
    expect(task.outputs[0]!.storage).not.toBe('stored');
    live.simulator('freepik').expireResult(task.provider_task_id!);
    const result = await runHere(['download', task.id, '-o', `${workdir}/`]);
    expect(result.stderr).toBe(
      `error: output 0 of video ${task.id} cannot be downloaded: the provider's file host answered 404 (its copy is gone or its link expired)\n`,
    );
    expect(result.code).toBe(6);
    expect(existsSync(join(workdir, `${task.id}.mp4`))).toBe(false);
  });

  it('--help lists every exit code the command can end with', async () => {
    const help = await runHere(['--help']);
    expect(help.code).toBe(0);
    const listed = [...help.stdout.slice(help.stdout.indexOf('Exit codes:')).matchAll(/^ {2}(\d+) /gm)].map((match) => Number(match[1]));
    expect(listed.sort((a, b) => a - b)).toEqual(Object.values(ExitCode).sort((a, b) => a - b));
  });

  it('a gateway URL that is not http(s) is a command-line error naming where it came from, not "cannot reach"', async () => {
    const port = new URL(live.url).port;
    const [fromEnv, fromFlag] = await Promise.all([
      runHere(['list'], { KLING_GATEWAY_URL: `localhost:${port}` }),
      runHere(['--url', `127.0.0.1:${port}`, 'list']),
    ]);
    expect([fromEnv.code, fromEnv.stderr]).toEqual([
      2,
      `error: KLING_GATEWAY_URL localhost:${port} is not an http(s) URL: did you mean http://localhost:${port}?\n`,
    ]);
    expect([fromFlag.code, fromFlag.stderr]).toEqual([2, `error: --url 127.0.0.1:${port} is not an http(s) URL: did you mean http://127.0.0.1:${port}?\n`]);
    // Set but empty is unset, as in config.yaml: the default gateway.
    const empty = await runHere(['list', '--url', live.url], { KLING_GATEWAY_URL: '' });
    expect(empty.code).toBe(0);
    const defaulted = await runHere(['list'], { KLING_GATEWAY_URL: '' });
    expect(defaulted.stderr).not.toMatch(/URL/);
  });

  it('a gateway URL no request can ever go to (a port fetch blocks, a port past 65535) is a command-line error that names why, not "try again later"', async () => {
    const [blocked, blockedFromEnv, pastRange, noHost] = await Promise.all([
      runHere(['--url', 'http://127.0.0.1:1', 'list']),
      runHere(['list'], { KLING_GATEWAY_URL: 'http://localhost:6000/' }),
      runHere(['--url', 'http://127.0.0.1:99999', 'models']),
      runHere(['--url', 'http://[::1', 'models']),
    ]);
    expect([blocked.code, blocked.stderr]).toEqual([
      2,
      'error: --url http://127.0.0.1:1 has port 1, which fetch (as browsers) never connects to, since other protocols use it: run the gateway on another port (e.g. 8080)\n',
    ]);
    expect([blockedFromEnv.code, blockedFromEnv.stderr]).toEqual([2, expect.stringMatching(/^error: KLING_GATEWAY_URL http:\/\/localhost:6000\/ has port 6000, which fetch/)]);
    expect([pastRange.code, pastRange.stderr]).toEqual([2, 'error: --url http://127.0.0.1:99999 is not a valid URL: its port 99999 is past 65535\n']);
    expect([noHost.code, noHost.stderr]).toEqual([2, 'error: --url http://[::1 is not a valid URL: its host cannot be read\n']);
  });

  it('-o with --no-download is a command-line error, said before any video is made (it used to be ignored without a word)', async () => {
    const before = (await api.listVideos({ limit: 100 })).data.length;
    const [made, waited] = await Promise.all([
      runHere(['generate', 'a fox', '--model', 'kling-v3', '--no-download', '-o', 'fox.mp4']),
      runHere(['wait', 'vid_x', '--no-download', '-o', 'fox.mp4']),
    ]);
    for (const run of [made, waited]) {
      expect([run.code, run.stderr]).toEqual([2, 'error: -o fox.mp4 says where to save the video and --no-download says not to save it: give one of them\n']);
    }
    expect((await api.listVideos({ limit: 100 })).data.length).toBe(before);
  });

  it('a gateway URL ending in /v1 is a command-line error that says to drop it, not "no such task" (5)', async () => {
    const before = (await api.listVideos({ limit: 100 })).data.length;
    const [listed, made, usage] = await Promise.all([
      runHere(['list'], { KLING_GATEWAY_URL: `${live.url}/v1` }),
      runHere(['--url', `${live.url}/v1/`, 'generate', 'a fox', '--model', 'kling-v3']),
      // An optional endpoint's 404 used to read as "not available on this gateway" (7).
      runHere(['usage'], { KLING_GATEWAY_URL: `${live.url}/v1` }),
    ]);
    for (const run of [listed, made, usage]) {
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/^error: Not found \(404\): no route for (GET|POST) \/v1\/v1\/(videos|usage)(\?\S*)?$/m);
      expect(run.stderr).toMatch(/\n {2}the gateway's URL is given with \/v1, which every path adds again: give it without \(http:\/\/host:port\)\n {2}request id: \S+\n$/);
    }
    expect((await api.listVideos({ limit: 100 })).data.length).toBe(before);
  });

  it('a gateway URL holding a user name and password is a command-line error that never repeats the password', async () => {
    const port = new URL(live.url).port;
    const [fromEnv, fromFlag, noScheme] = await Promise.all([
      runHere(['list'], { KLING_GATEWAY_URL: `http://admin:s3cret-pw@127.0.0.1:${port}` }),
      runHere(['--url', `http://admin:s3cret-pw@127.0.0.1:${port}/`, 'download', 'vid_x']),
      runHere(['--url', `admin:s3cret-pw@127.0.0.1:${port}`, 'list']),
    ]);
    expect([fromEnv.code, fromEnv.stderr]).toEqual([
      2,
      `error: KLING_GATEWAY_URL http://***@127.0.0.1:${port} holds a user name or password: give the URL without them, and the key with --key or KLING_GATEWAY_API_KEY\n`,
    ]);
    expect([fromFlag.code, fromFlag.stderr]).toEqual([2, expect.stringMatching(/^error: --url http:\/\/\*\*\*@127\.0\.0\.1:\d+\/ holds a user name or password/)]);
    expect([noScheme.code, noScheme.stderr]).toEqual([2, `error: --url ***@127.0.0.1:${port} is not an http(s) URL: e.g. http://127.0.0.1:8080\n`]);
    for (const result of [fromEnv, fromFlag, noScheme]) expect(`${result.stdout}${result.stderr}`).not.toContain('s3cret-pw');
  });

  it('a key an HTTP header cannot carry is a command-line error that never shows the key', async () => {
    const [twoLines, euro] = await Promise.all([
      runHere(['list'], { KLING_GATEWAY_API_KEY: 'sk-first-half\nsk-second-half' }),
      runHere(['--key', 'sk-price-in-€-123', 'get', 'vid_x']),
    ]);
    expect([twoLines.code, twoLines.stderr]).toEqual([2, 'error: the gateway key (KLING_GATEWAY_API_KEY) holds a line break, which an HTTP header cannot carry\n']);
    expect([euro.code, euro.stderr]).toEqual([2, 'error: the gateway key (--key) holds “€”, which an HTTP header cannot carry\n']);
    // Around the key they are dropped, as a header's own spaces are: that key works.
    const padded = await runHere(['list', '--limit', '1'], { KLING_GATEWAY_API_KEY: `${TENANT_KEY}\n` });
    expect(padded.code, padded.stderr).toBe(0);
  });

  it('a server that answers with a web page rather than the API is named as not a gateway, not a bug', async () => {
    // Another app on the gateway's port, answering every path with its page.
    const page = await loopbackServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!DOCTYPE html><html><body>some app</body></html>');
    });
    try {
      const results = await Promise.all(
        [['list'], ['get', 'vid_x'], ['providers'], ['cancel', 'vid_x'], ['usage']].map((args) => runHere(args, { KLING_GATEWAY_URL: page.base })),
      );
      for (const result of results) {
        expect([result.code, result.stderr]).toEqual([9, expect.stringMatching(/answered with text\/html, not JSON: is it a Kling Gateway\?/)]);
        expect(result.stderr).not.toContain('Unexpected token');
      }
      expect(results[0]!.stderr).toBe(`error: ${page.base} answered with text/html, not JSON: is it a Kling Gateway? (GET /v1/videos)\n`);
    } finally {
      await page.close();
    }
  });

  it('an error page from a proxy in front of a stopped gateway is summed up in one line, not printed as HTML', async () => {
    // What nginx (deploy/nginx.conf) answers while no replica is up.
    const proxy = await loopbackServer((req, res) => {
      req.resume();
      res
        .writeHead(502, { 'content-type': 'text/html', server: 'nginx' })
        .end('<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n');
    });
    try {
      const result = await runHere(['list'], { KLING_GATEWAY_URL: proxy.base });
      expect([result.code, result.stderr]).toEqual([9, 'error: Bad Gateway (502): an HTML page ("502 Bad Gateway"), not an answer of the gateway: a proxy in front of it?\n']);
    } finally {
      await proxy.close();
    }
  });

  it("prints an upstream's escape sequences and carriage returns as U+FFFD, never for the terminal to act on", async () => {
    // What an upstream may put in the text a task carries: set the clipboard (OSC 52), clear the
    // screen, a C1 CSI, a carriage return that overwrites the line with a fake status, and bidi
    // overrides that show the text after them reversed ("deliaf" read as "failed").
    const evil = 'upstream said \x1b]52;c;ZXZpbA==\x07\x1b[2J\u009b31m\rsucceeded \u202edeliaf\u202c \u2067isolated\u2069';
    const real = await api.createVideo({ model: 'kling-v3', prompt: 'escape sequences' });
    const task: Task = {
      ...real,
      status: 'failed',
      provider_status: '\x1b[8mhidden',
      error: { code: 'provider_error', message: evil, provider_code: null },
      attempts: real.attempts.map((attempt) => ({ ...attempt, message: evil })),
    };
    const document = await (await fetch(`${live.url}/openapi.json`)).text();
    const gateway = await loopbackServer((req, res) => {
      req.resume();
      const path = new URL(req.url!, 'http://x').pathname;
      if (path === '/openapi.json') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(document);
        return;
      }
      if (req.method === 'POST') {
        res.writeHead(409, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Conflict', status: 409, detail: evil }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(path === '/v1/videos' ? { data: [task], next_cursor: null } : task));
    });
    try {
      const runs = await Promise.all(
        [['get', task.id], ['list'], ['wait', task.id, '--no-download'], ['cancel', task.id], ['--json', 'get', task.id]].map((args) =>
          runHere(args, { KLING_GATEWAY_URL: gateway.base }),
        ),
      );
      for (const [index, result] of runs.entries()) {
        const printed = `${result.stdout}${result.stderr}`;
        expect(printed).toMatch(/\S/);
        expect(printed).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/);
        // `list` shows no message; --json the same value, escaped.
        if (index === 4) expect(JSON.parse(result.stdout).error.message).toBe(evil);
        else if (index !== 1) expect(printed).toContain('upstream said \uFFFD]52;c;ZXZpbA==');
      }
    } finally {
      await gateway.close();
    }
  });

  it('a 503 or 429 says how long to wait, from Retry-After, once', async () => {
    // The gateway's own answers while it stops (503) and past a tenant's creates per minute (429).
    const answers: Record<string, [number, string, string]> = {
      '/v1/videos': [503, 'Retry later', 'the gateway is stopping; send this request again (to another replica)'],
      '/v1/videos/vid_x': [429, 'Too many requests', "This key's tenant may create 5 videos per minute; retry in 12 s."],
    };
    const gateway = await loopbackServer((req, res) => {
      req.resume();
      const [status, title, detail] = answers[new URL(req.url!, 'http://x').pathname]!;
      res
        .writeHead(status, { 'content-type': 'application/problem+json', 'retry-after': String(status === 503 ? 2 : 12), 'x-request-id': 'req-1' })
        .end(JSON.stringify({ type: 'about:blank', title, status, detail }));
    });
    try {
      const [stopping, limited] = await Promise.all([runHere(['list'], { KLING_GATEWAY_URL: gateway.base }), runHere(['get', 'vid_x'], { KLING_GATEWAY_URL: gateway.base })]);
      expect([stopping.code, stopping.stderr]).toEqual([
        9,
        'error: Retry later (503): the gateway is stopping; send this request again (to another replica)\n  retry after: 2 s\n  request id: req-1\n',
      ]);
      expect([limited.code, limited.stderr]).toEqual([
        9,
        "error: Too many requests (429): This key's tenant may create 5 videos per minute; retry in 12 s.\n  request id: req-1\n",
      ]);
    } finally {
      await gateway.close();
    }
  });

  it('generate takes the prompt argument over the prompt of --file, as it takes --prompt', async () => {
    const file = join(workdir, 'base-request.json');
    writeFileSync(file, JSON.stringify({ model: 'kling-v3', prompt: 'a fox', duration: 5 }));
    const created = await runHere(['generate', 'a wolf', '-f', file, '--json']);
    expect([created.code, created.stderr]).toEqual([0, expect.any(String)]);
    expect((JSON.parse(created.stdout) as Task).request.prompt).toBe('a wolf');
    // Given twice on the command line, differently: which one was meant is unclear.
    const twice = await runHere(['generate', 'a wolf', '--prompt', 'a bear', '-f', file]);
    expect([twice.code, twice.stderr]).toEqual([2, 'error: give the prompt once: as an argument or as --prompt\n']);
  });

  it('webhooks shows the deliveries of a task\'s events as the API has them', async () => {
    const hits: string[] = [];
    const receiver = await loopbackServer((req, res) => {
      hits.push(String(req.headers['webhook-id']));
      req.resume();
      // The first try fails, so the table has a retry to show.
      res.writeHead(hits.length === 1 ? 503 : 204).end();
    });
    try {
      const url = `${receiver.base}/hooks`;
      const task = await api.createVideo({ model: 'kling-v3', prompt: 'a paper boat', duration: 5, webhook_url: url });
      const deadline = Date.now() + 20_000;
      const tried = async () => ((await api.webhookDeliveries(task.id)).data[0]?.attempts ?? 0) >= 1;
      while (!(await tried()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));

      const [table, json, none] = await Promise.all([
        runHere(['webhooks', task.id]),
        runHere(['--json', 'webhooks', task.id]),
        runHere(['webhooks', (await api.createVideo({ model: 'kling-v3', prompt: 'no hook', duration: 5 })).id]),
      ]);
      const answer = await api.webhookDeliveries(task.id);
      expect(JSON.parse(json.stdout).data.map((d: { id: string }) => d.id)).toEqual(answer.data.map((d) => d.id));
      expect(answer.data[0]).toMatchObject({ id: hits[0], type: 'video.processing', last_status: 503 });
      expect(table.code).toBe(0);
      expect(table.stdout).toMatch(/^EVENT\s+STATUS\s+TRIES\s+LAST\s+WHEN\s+ERROR/);
      expect(table.stdout).toMatch(/video\.processing\s+pending\s+1\s+503/);
      expect([none.code, none.stderr]).toEqual([0, expect.stringContaining('no webhook events')]);
    } finally {
      await receiver.close();
    }
  });

  it('generate sends a create whose answer was lost again with the same key: one video, not two', async () => {
    // A proxy that lets the first send of each create reach the gateway, then drops the connection
    // before the answer gets back, as a flaky network or a restarting load balancer does.
    const { createServer, request } = await import('node:http');
    const gateway = new URL(live.url);
    const keys: (string | undefined)[] = [];
    const proxy = createServer((incoming, outgoing) => {
      const create = incoming.method === 'POST' && incoming.url === '/v1/videos';
      if (create) keys.push(incoming.headers['idempotency-key'] as string | undefined);
      const upstream = request({ host: gateway.hostname, port: gateway.port, path: incoming.url, method: incoming.method, headers: incoming.headers }, (answer) => {
        if (create && keys.indexOf(keys.at(-1)) === keys.length - 1) {
          answer.resume();
          answer.on('end', () => incoming.socket.destroy());
          return;
        }
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      });
      incoming.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      // With --wait and without: each is one video.
      for (const [flags, status] of [[['--wait', '--no-download'], 'succeeded'], [[], '(queued|processing)']] as const) {
        keys.length = 0;
        const prompt = `answer lost ${flags.length} ${Date.now()}`;
        const result = await runHere(['generate', prompt, '--model', 'kling-v3', ...flags], {
          KLING_GATEWAY_URL: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
        });
        expect(result.code, result.stderr).toBe(0);
        expect(result.stderr).toContain('sending it again with the same Idempotency-Key');
        expect(keys).toHaveLength(2);
        expect(keys[0]).toBeDefined();
        expect(keys[1]).toBe(keys[0]);
        const made: Task[] = [];
        for await (const task of api.listAllVideos({ limit: 100 })) if (task.request.prompt === prompt) made.push(task);
        expect(made.map((task) => task.id)).toEqual([new RegExp(`^(vid_\\S+)\\s+${status}$`, 'm').exec(result.stdout)?.[1]]);
      }
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it("generate waits out a 503's Retry-After before sending the create again, and leaves a long one to the user", async () => {
    // A gateway on its way down: it answers the first create 503 with Retry-After, then (restarted
    // behind the balancer) takes the next one.
    const { createServer, request } = await import('node:http');
    const gateway = new URL(live.url);
    let refuse = 0;
    let retryAfter = '7';
    const keys: (string | undefined)[] = [];
    const proxy = createServer((incoming, outgoing) => {
      if (incoming.method === 'POST' && incoming.url === '/v1/videos') {
        keys.push(incoming.headers['idempotency-key'] as string | undefined);
        if (refuse > 0) {
          refuse -= 1;
          incoming.resume();
          outgoing.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': retryAfter });
          outgoing.end(JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'the gateway is stopping' }));
          return;
        }
      }
      const upstream = request({ host: gateway.hostname, port: gateway.port, path: incoming.url, method: incoming.method, headers: incoming.headers }, (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      });
      incoming.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const env = { KLING_GATEWAY_URL: `http://127.0.0.1:${(proxy.address() as { port: number }).port}` };
    const waits: number[] = [];
    const pause = async (ms: number) => void waits.push(ms);
    try {
      refuse = 1;
      const waited = await runHere(['generate', `retry after ${Date.now()}`, '--model', 'kling-v3'], env, pause);
      expect(waited.code, waited.stderr).toBe(0);
      expect(waits).toEqual([7_000]);
      // An answer came, though not the task: said as it is, not as "no answer".
      expect(waited.stderr).toContain('the create was answered 503 (Service Unavailable: the gateway is stopping); sending it again in 7 s with the same Idempotency-Key');
      expect(keys).toHaveLength(2);
      expect(keys[1]).toBe(keys[0]);
      expect(waited.stdout).toMatch(/^vid_\S+\s+(queued|processing)$/m);

      // Asked to come back in ten minutes: the command does not sit there; it says how to get the video.
      refuse = 1;
      retryAfter = '600';
      keys.length = 0;
      waits.length = 0;
      const left = await runHere(['generate', `retry after long ${Date.now()}`, '--model', 'kling-v3'], env, pause);
      expect(left.code).not.toBe(0);
      expect(waits).toEqual([]);
      expect(keys).toHaveLength(1);
      expect(left.stderr).toContain(`run the command again with --idempotency-key ${keys[0]}`);
      expect(left.stderr).toContain('retry after: 600 s');
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('a gateway that takes the create and never answers: --request-timeout ends each try, the same key goes again, then the key is named', async () => {
    const keys: string[] = [];
    const hanging = await loopbackServer((req) => {
      req.resume();
      keys.push(String(req.headers['idempotency-key']));
    });
    const waits: number[] = [];
    const pause = async (ms: number) => void waits.push(ms);
    try {
      const env = { KLING_GATEWAY_URL: hanging.base };
      // Each try's 0.2 s run out once the gateway has it, however slow the machine (a real 0.2 s
      // could run out before the try was even sent, and the gateway would see fewer of them).
      const run = await withClientTimerHeld(async (runOut) => {
        const running = runHere(['--request-timeout', '0.2', 'generate', 'a fox', '--model', 'kling-v3'], env, pause);
        for (let sent = 1; sent <= 3; sent++) {
          await vi.waitFor(() => expect(keys).toHaveLength(sent), { timeout: 10_000, interval: 5 });
          await runOut(200);
        }
        return running;
      });
      expect(run.code).toBe(9);
      expect(keys).toHaveLength(3);
      expect(new Set(keys).size).toBe(1);
      expect(waits).toEqual([500, 2_000]);
      expect(run.stderr).toContain(`no answer to the create (${hanging.base} did not answer within 0.2 s); sending it again with the same Idempotency-Key`);
      expect(run.stderr).toContain(`run the command again with --idempotency-key ${keys[0]}`);

      // The limit from the environment; a wrong one is a usage error that sends nothing.
      keys.length = 0;
      const fromEnv = await withClientTimerHeld(async (runOut) => {
        const running = runHere(['get', 'vid_x'], { ...env, KLING_GATEWAY_REQUEST_TIMEOUT: '0.2' });
        await vi.waitFor(() => expect(keys).toHaveLength(1), { timeout: 10_000, interval: 5 });
        await runOut(200);
        return running;
      });
      expect([fromEnv.code, fromEnv.stderr]).toEqual([9, `error: ${hanging.base} did not answer within 0.2 s\n`]);
      const [badFlag, badEnv] = await Promise.all([
        runHere(['--request-timeout', 'soon', 'list'], env),
        runHere(['list'], { ...env, KLING_GATEWAY_REQUEST_TIMEOUT: '-3' }),
      ]);
      expect([badFlag.code, badFlag.stderr.split('\n')[0]]).toEqual([2, "error: option '--request-timeout <seconds>' argument 'soon' is invalid. not a number of seconds (0 for no limit)."]);
      expect([badEnv.code, badEnv.stderr]).toEqual([2, 'error: KLING_GATEWAY_REQUEST_TIMEOUT -3: not a number of seconds (0 for no limit).\n']);
      expect(keys).toHaveLength(1); // the get's: the refused commands sent nothing
    } finally {
      await hanging.close();
    }
  });

  it('a resend answered 409 "still being submitted" by a gateway older than its own type (the generic conflict) goes again, and the key is named', async () => {
    // The first create is taken and never answered (a failover slower than the limit); the
    // gateway then answers each resend with that key 409: the first send is still being submitted.
    const { run, keys, waits } = await generateFirstLost(409, {
      type: 'https://kling-gateway.dev/problems/conflict',
      title: 'Conflict',
      status: 409,
      detail: 'A request with this Idempotency-Key is still being submitted; retry shortly.',
    });
    // The key was made up by the CLI: without it, running the command again makes (and bills) a second video.
    expect(run.stderr).toContain(`run the command again with --idempotency-key ${keys[0]}`);
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(1);
    expect(waits).toEqual([500, 2_000]);
    expect(run.stderr).toContain('the create sent before is still being submitted; sending it again in 2 s with the same Idempotency-Key');
    expect(run.code).toBe(3);
  });

  it('a resend answered 409 idempotency-key-in-progress goes again after its Retry-After, and the key is named', async () => {
    const { run, keys, waits } = await generateFirstLost(
      409,
      {
        type: 'https://kling-gateway.dev/problems/idempotency-key-in-progress',
        title: 'Request with this Idempotency-Key still in progress',
        status: 409,
        detail: 'A request with this Idempotency-Key is still being submitted; send it again after Retry-After seconds.',
      },
      { 'retry-after': '3' },
    );
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(1);
    // After the lost first send the CLI's own 0.5 s; after the 409, the gateway's 3 s (longer than the CLI's 2 s).
    expect(waits).toEqual([500, 3_000]);
    expect(run.stderr).toContain('the create sent before is still being submitted; sending it again in 3 s with the same Idempotency-Key');
    expect(run.stderr).toContain(`run the command again with --idempotency-key ${keys[0]}`);
    expect(run.code).toBe(3);
  });

  it('a create run again with a key whose first request is still in progress (409 idempotency-key-in-progress) is sent again and gets its task', async () => {
    // An earlier run's create lost its answer; this run, with its key, meets it still being submitted.
    const keys: string[] = [];
    const settling = await loopbackServer((req, res) => {
      req.resume();
      keys.push(String(req.headers['idempotency-key']));
      if (keys.length === 1) {
        res.writeHead(409, { 'content-type': 'application/problem+json', 'retry-after': '2' }).end(
          JSON.stringify({
            type: 'https://kling-gateway.dev/problems/idempotency-key-in-progress',
            title: 'Request with this Idempotency-Key still in progress',
            status: 409,
            detail: 'A request with this Idempotency-Key is still being submitted; send it again after Retry-After seconds.',
          }),
        );
        return;
      }
      res.writeHead(202, { 'content-type': 'application/json', 'idempotent-replayed': 'true' }).end(JSON.stringify(succeededTask(settling.base, 'vid_earlier')));
    });
    const waits: number[] = [];
    const pause = async (ms: number) => void waits.push(ms);
    try {
      const run = await runHere(['generate', 'a fox', '--model', 'kling-v3', '--idempotency-key', 'order-7', '--json'], { KLING_GATEWAY_URL: settling.base }, pause);
      expect(keys).toEqual(['order-7', 'order-7']);
      expect(waits).toEqual([2_000]);
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout).id).toBe('vid_earlier');
    } finally {
      await settling.close();
    }
  });

  /**
   * `cancel vid_kept` against a gateway that answers the cancel 409 cancel-pending (Retry-After: 3)
   * `pending` times, then with the task canceled. The run, the cancels sent and the pauses.
   */
  async function cancelPendingThen(pending: number, args: string[] = [], retryAfter = '3', type = 'https://kling-gateway.dev/problems/cancel-pending') {
    let cancels = 0;
    const waits: number[] = [];
    const gateway = await loopbackServer((req, res) => {
      req.resume();
      // Only the cancels: the client may also read what the gateway serves (its endpoints).
      if (req.method !== 'POST' || req.url !== '/v1/videos/vid_kept/cancel') {
        res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404, detail: `no route for ${req.method} ${req.url}` }));
        return;
      }
      cancels++;
      if (cancels <= pending) {
        res.writeHead(409, { 'content-type': 'application/problem+json', 'retry-after': retryAfter }).end(
          JSON.stringify({
            type,
            title: 'Cancel not decided yet',
            status: 409,
            detail: 'video vid_kept is being sent to freepik right now and whether it accepts is not known yet. The cancel is kept: if the provider turns the create down, the task ends canceled and is sent nowhere else. Read the task, or retry the cancel, after Retry-After seconds.',
          }),
        );
        return;
      }
      const canceled = { ...succeededTask(gateway.base, 'vid_kept', 0), status: 'canceled', provider: null, provider_task_id: null, provider_status: null };
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ ...canceled, error: { code: 'canceled', message: 'canceled by the caller while its create was on its way; no provider took it', provider_code: null }, cost: { credits: 0, estimated: false, currency_amount: 0, currency: 'USD' } }),
      );
    });
    try {
      const run = await runHere([...args, 'cancel', 'vid_kept'], { KLING_GATEWAY_URL: gateway.base }, async (ms) => void waits.push(ms));
      return { run, cancels, waits };
    } finally {
      await gateway.close();
    }
  }

  it('cancel answered 409 cancel-pending asks again after its Retry-After, and shows the task once it is canceled', async () => {
    const { run, cancels, waits } = await cancelPendingThen(1, ['--json']);
    expect(cancels).toBe(2);
    expect(waits).toEqual([3_000]);
    expect(run.stderr).toContain('the cancel is kept while the create on its way is undecided; asking again in 3 s');
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ id: 'vid_kept', status: 'canceled' });
  });

  it('cancel still answered 409 cancel-pending after its tries exits 9 (try again later), saying the cancel is kept, not 3 as for a request to fix', async () => {
    const { run, cancels, waits } = await cancelPendingThen(1_000);
    expect(cancels).toBe(4);
    expect(waits).toEqual([3_000, 3_000, 3_000]);
    expect(run.stderr).toContain('The cancel is kept');
    expect(run.stderr).toContain('run `cancel vid_kept` again, or `get vid_kept`, in a few seconds');
    expect(run.code).toBe(ExitCode.unreachable);
  });

  it('cancel answered 409 cancel-pending with a long Retry-After asks again after 30 s at most', async () => {
    const { run, cancels, waits } = await cancelPendingThen(1, ['--json'], '600');
    expect(cancels).toBe(2);
    expect(waits).toEqual([30_000]);
    expect(run.stderr).toContain('asking again in 30 s');
    expect(run.code, run.stderr).toBe(0);
  });

  it('cancel answered a final 409 (conflict: the task finished, or a provider holds it) is not asked again', async () => {
    const { run, cancels, waits } = await cancelPendingThen(1_000, [], '3', 'https://kling-gateway.dev/problems/conflict');
    expect(cancels).toBe(1);
    expect(waits).toEqual([]);
    expect(run.code).not.toBe(ExitCode.unreachable);
    expect(run.code).not.toBe(0);
  });

  it('a resend answered 409 idempotency-key-reused is not sent again, and names no key to re-run with (it would be refused again)', async () => {
    // --idempotency-key names a key an earlier, different request used; the first send's answer is lost.
    const { run, keys, waits } = await generateFirstLost(
      409,
      {
        type: 'https://kling-gateway.dev/problems/idempotency-key-reused',
        title: 'Idempotency-Key already used with another request',
        status: 409,
        detail: 'This Idempotency-Key was used with a different request body (it made task vid_other), and a key answers only the body it came with. Send a different request with a new key.',
      },
      {},
      ['--idempotency-key', 'order-8'],
    );
    expect(keys).toEqual(['order-8', 'order-8']);
    expect(waits).toEqual([500]);
    expect(run.stderr).toContain('Send a different request with a new key.');
    expect(run.stderr).not.toContain('run the command again with --idempotency-key');
    expect(run.stderr).not.toContain('still being submitted');
    expect(run.code).toBe(3);
  });

  it('a resend refused 429 after a create that got no answer names the key: the first send may still make the video', async () => {
    // The first create is taken and never answered (the gateway is slow to write it); the resend
    // comes while that create is not yet written, so its key made no task yet and the tenant's
    // creates of the minute refuse it. The first create goes on and makes (and bills) its video.
    const keys: string[] = [];
    const limited = await loopbackServer((req, res) => {
      req.resume();
      keys.push(String(req.headers['idempotency-key']));
      if (keys.length === 1) return;
      res.writeHead(429, { 'content-type': 'application/problem+json', 'retry-after': '40' }).end(
        JSON.stringify({
          type: 'https://kling-gateway.dev/problems/rate-limited',
          title: 'Too Many Requests',
          status: 429,
          detail: "This key's tenant may create 2 videos per minute; retry in 40 s.",
        }),
      );
    });
    const pause = async () => undefined;
    try {
      const run = await withClientTimerHeld(async (runOut) => {
        const running = runHere(['--request-timeout', '1', 'generate', 'a fox', '--model', 'kling-v3'], { KLING_GATEWAY_URL: limited.base }, pause);
        await vi.waitFor(() => expect(keys).toHaveLength(1), { timeout: 10_000, interval: 5 });
        await runOut(1_000);
        return running;
      });
      expect(keys).toHaveLength(2);
      expect(new Set(keys).size).toBe(1);
      expect(run.stderr).toContain('retry in 40 s');
      // Run again without the key, the command would make a second video beside the first send's.
      expect(run.stderr).toContain(`run the command again with --idempotency-key ${keys[0]}`);
      expect(run.code).not.toBe(0);
    } finally {
      await limited.close();
    }
  });

  /**
   * Runs `kling-gateway <args>` against a stand-in gateway: `answer` takes each request, and may
   * send the command `signal` instead of answering. The exit code and stderr.
   */
  async function signaledRun(
    args: string[],
    signal: NodeJS.Signals,
    answer: (req: IncomingMessage, res: ServerResponse, stop: () => void) => void,
  ): Promise<{ code: number | null; stderr: string }> {
    let stop = () => undefined as unknown;
    const gateway = await loopbackServer((req, res) => {
      req.resume();
      answer(req, res, () => stop());
    });
    try {
      const child = spawn(process.execPath, [BIN, ...args], {
        cwd: workdir,
        env: { ...process.env, KLING_GATEWAY_URL: gateway.base, KLING_GATEWAY_API_KEY: TENANT_KEY },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      stop = () => child.kill(signal);
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      return { code, stderr };
    } finally {
      await gateway.close();
    }
  }

  /**
   * Runs `kling-gateway <args>` against a gateway that takes the create and never answers, and
   * presses Ctrl-C once the create arrived: the key it was sent with, the exit code and stderr.
   */
  async function interruptedCreate(args: string[]): Promise<{ sentKey: string | undefined; code: number | null; stderr: string }> {
    let sentKey: string | undefined;
    const { code, stderr } = await signaledRun(args, 'SIGINT', (req, _res, stop) => {
      sentKey = req.headers['idempotency-key'] as string | undefined;
      stop();
    });
    return { sentKey, code, stderr };
  }

  it('Ctrl-C while the create is on its way names the Idempotency-Key that gets that video, not a second one', async () => {
    const { sentKey, code, stderr } = await interruptedCreate(['generate', 'x', '--model', 'kling-v3', '--wait']);
    expect(sentKey).toMatch(/^cli-/);
    expect([code, stderr]).toEqual([
      130,
      `the gateway may have created this video: run the command again with --idempotency-key ${sentKey} to get it rather than a second one\n\ninterrupted\n`,
    ]);
  });

  it('Ctrl-C names a key holding shell characters quoted, so the command pasted back sends that key and not another', async () => {
    const given = `order;42&it's $HOME`.replace(/ /g, '');
    const { sentKey, code, stderr } = await interruptedCreate(['generate', 'x', '--model', 'kling-v3', '--idempotency-key', given]);
    expect(sentKey).toBe(given);
    const named = /--idempotency-key (.*) to get it/.exec(stderr)?.[1];
    expect(code).toBe(130);
    expect(named).toBe(`'order;42&it'\\''s$HOME'`);
    // What a POSIX shell makes of the key as printed: the key that was sent.
    expect(execFileSync('sh', ['-c', `printf %s ${named}`], { encoding: 'utf8' })).toBe(given);
  });

  it('SIGTERM while generate --wait follows its video (timeout, a CI job canceled) names the video to follow again, as Ctrl-C does', async () => {
    // A gateway that makes the video, then holds every read of it; the command is stopped once it follows.
    const { code, stderr } = await signaledRun(['generate', 'x', '--model', 'kling-v3', '--wait'], 'SIGTERM', (req, res, stop) => {
      if (req.method === 'POST' && req.url === '/v1/videos') {
        const queued = { ...succeededTask('http://unused.test', 'vid_terminated'), status: 'queued', completed_at: null, provider_status: 'CREATED', outputs: [] };
        res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify(queued));
        return;
      }
      if (req.url?.startsWith('/v1/videos/vid_terminated')) {
        stop();
        return;
      }
      res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404 }));
    });
    // 128 + SIGTERM, the status a shell shows for a process the signal ended.
    expect(code).toBe(143);
    expect(stderr).toContain('video vid_terminated goes on at the gateway; follow it with: kling-gateway wait vid_terminated\n');
    expect(stderr.endsWith('\nterminated\n')).toBe(true);
  });

  it('SIGTERM ends a command that does not watch for it (migrate held by a database that never answers) within a short grace', async () => {
    const database = await silentServer();
    try {
      const child = spawn(process.execPath, [BIN, 'migrate', '--database-url', `postgres://gateway@127.0.0.1:${database.port}/gateway`], {
        cwd: workdir,
        env: { ...process.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
      await vi.waitFor(() => expect(database.received()).not.toBe(''), { timeout: 20_000, interval: 20 });
      const sent = Date.now();
      child.kill('SIGTERM');
      // `timeout 60 kling-gateway migrate` sends one SIGTERM and waits for the command to end: it
      // ends within its grace of 2 s, not once the database connection gives up (10 s) or never.
      expect(await closed).toBe(143);
      expect(Date.now() - sent).toBeLessThan(6_000);
    } finally {
      await database.close();
    }
  });

  it('generate --wait whose download breaks says the video is done and how to save it, not to make it again', async () => {
    // Everything gets through except the video's bytes: its download stops half-way.
    const { createServer, request } = await import('node:http');
    const seen: string[] = [];
    // A gateway that keeps copies, so the video comes from its /content.
    const keeping = await startLiveGateway({ storage: { mode: 'copy', filesystem: { path: mkdtempSync(join(tmpdir(), 'kling-cli-copies-')) } } });
    const gateway = new URL(keeping.url);
    const proxy = createServer((incoming, outgoing) => {
      const cut = incoming.url?.includes('/content');
      seen.push(`${incoming.method} ${incoming.url}`);
      const upstream = request({ host: gateway.hostname, port: gateway.port, path: incoming.url, method: incoming.method, headers: incoming.headers }, (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        if (!cut) {
          answer.pipe(outgoing);
          return;
        }
        answer.once('data', (chunk: Buffer) => {
          outgoing.write(chunk.subarray(0, 100));
          outgoing.socket?.destroy();
          answer.destroy();
        });
      });
      incoming.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const prompt = `saved through a flaky link ${Date.now()}`;
      const result = await runHere(['generate', prompt, '--model', 'kling-v3', '--wait', '-o', `${workdir}/`], {
        KLING_GATEWAY_URL: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
      });
      const made = (await new GatewayClient({ baseUrl: keeping.url, apiKey: TENANT_KEY }).listVideos()).data;
      expect(made.map((task) => [task.request.prompt, task.status, task.outputs[0]?.storage])).toEqual([[prompt, 'succeeded', 'stored']]);
      expect(seen).toContain(`GET /v1/videos/${made[0]!.id}/content?index=0`);
      expect(result.code).toBe(9);
      expect(result.stderr).toContain(`video ${made[0]!.id} succeeded but was not saved; save it with: kling-gateway download ${made[0]!.id}`);
      expect(existsSync(join(workdir, `${made[0]!.id}.mp4.part`))).toBe(false);
      expect(existsSync(join(workdir, `${made[0]!.id}.mp4`))).toBe(false);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
      await keeping.close();
    }
  });

  it('generate --wait names the task it made when following it fails, so it can be followed again', async () => {
    // The create gets through; every read of the task after it (stream, polls) loses its connection.
    const { createServer, request } = await import('node:http');
    const gateway = new URL(live.url);
    const proxy = createServer((incoming, outgoing) => {
      if (incoming.method === 'GET' && incoming.url?.startsWith('/v1/videos/vid_')) {
        incoming.socket.destroy();
        return;
      }
      const upstream = request({ host: gateway.hostname, port: gateway.port, path: incoming.url, method: incoming.method, headers: incoming.headers }, (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      });
      incoming.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const prompt = `followed through a flaky link ${Date.now()}`;
      // --timeout: a gateway away is otherwise followed for about half a minute (a restart) before the command gives up.
      const result = await runHere(['--json', 'generate', prompt, '--model', 'kling-v3', '--wait', '--timeout', '4'], {
        KLING_GATEWAY_URL: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
      }, async () => undefined);
      const made: Task[] = [];
      for await (const task of api.listAllVideos({ limit: 100 })) if (task.request.prompt === prompt) made.push(task);
      expect(made).toHaveLength(1);
      expect(result.code).toBe(8);
      expect(result.stderr).toContain(`kling-gateway wait ${made[0]!.id}`);
      const resumed = await runHere(['wait', made[0]!.id, '--no-download']);
      expect([resumed.code, resumed.stdout]).toEqual([0, expect.stringMatching(new RegExp(`^${made[0]!.id}\\s+succeeded$`, 'm'))]);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('download makes the directory -o names, and a file it cannot write is not "gateway unreachable"', async () => {
    const task = await api.createVideo({ model: 'kling-v3', prompt: 'saved somewhere new' });
    await api.waitForVideo(task.id, { timeoutMs: 20_000 });

    const into = join(workdir, 'new', 'folder');
    const saved = await runHere(['download', task.id, '-o', `${into}/`]);
    expect([saved.code, saved.stderr]).toEqual([0, expect.stringContaining(`saved ${join(into, `${task.id}.mp4`)}`)]);
    expect(existsSync(join(into, `${task.id}.mp4`))).toBe(true);

    // Under a regular file nothing can be written: exit 2 (fix the command line), not 9 (which
    // says "try again later"), with the way to save it once -o is right.
    const blocker = join(workdir, 'a-file');
    writeFileSync(blocker, 'not a directory');
    const refused = await runHere(['download', task.id, '-o', join(blocker, 'fox.mp4')]);
    expect([refused.code, refused.stderr]).toEqual([2, expect.stringContaining(`kling-gateway download ${task.id} -o`)]);
  });

  it('generate -o without --wait follows the task and saves it under that name, rather than ignoring -o', async () => {
    const target = join(workdir, 'named-without-wait.mp4');
    const result = await runHere(['generate', 'a fox, saved by name', '--model', 'kling-v3', '-o', target]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^vid_\S+\s+succeeded$/m);
    expect(result.stderr).toContain(`saved ${target} (`);
    expect(existsSync(target)).toBe(true);
  });

  it('never replaces a file -o names without --force, and generate --wait says so before making the video', async () => {
    const task = await api.waitForVideo((await api.createVideo({ model: 'kling-v3', prompt: 'saved over nothing' })).id, { timeoutMs: 20_000 });
    const mine = join(workdir, 'my-fox.mp4');
    writeFileSync(mine, 'a video made earlier');

    const kept = await runHere(['download', task.id, '-o', mine]);
    expect([kept.code, kept.stderr]).toEqual([2, `error: ${mine} already exists: pass --force to replace it, or save elsewhere with: kling-gateway download ${task.id} -o <path>\n`]);
    expect(readFileSync(mine, 'utf8')).toBe('a video made earlier');
    expect(existsSync(`${mine}.part`)).toBe(false);

    // Before anything is sent: the gateway at this address would make it exit 9.
    const offline = await runHere(['generate', 'x', '--model', 'kling-v3', '--wait', '-o', mine], { KLING_GATEWAY_URL: 'http://127.0.0.1:2' });
    expect([offline.code, offline.stderr]).toEqual([2, `error: ${mine} already exists: pass --force to replace it, or -o another path\n`]);

    const replaced = await runHere(['download', task.id, '-o', mine, '--force']);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(readFileSync(mine).equals(Buffer.from(await (await fetch(task.outputs[0]!.url)).arrayBuffer()))).toBe(true);
    // The task's own file name is that task's output: downloading it again is fine.
    const twice = [await runHere(['download', task.id, '-o', `${workdir}/`]), await runHere(['download', task.id, '-o', `${workdir}/`])];
    expect(twice.map((result) => result.code)).toEqual([0, 0]);
  });

  it('exits 6 when the video fails, and 8 when waiting runs out', async () => {
    live.simulator('freepik').setOutcome('fail');
    const failed = await runHere(['generate', '--model', 'kling-v3', '--prompt', 'doomed', '--wait']);
    expect(failed.code).toBe(6);
    expect(failed.stderr).toMatch(/^failed · freepik · .* · provider_error: /m);
    const id = /^(vid_\S+)\s+failed$/m.exec(failed.stdout)?.[1];
    expect((await api.getVideo(id!)).status).toBe('failed');
    const nothing = await runHere(['download', id!]);
    expect([nothing.code, nothing.stderr]).toEqual([6, expect.stringMatching(new RegExp(`^error: video ${id} failed \\(provider_error: .+\\); there is nothing to download\\n$`))]);

    const slow = await startLiveGateway({ sandbox: { queued_ms: 60_000, processing_ms: 60_000 } });
    try {
      const created = await new GatewayClient({ baseUrl: slow.url, apiKey: TENANT_KEY }).createVideo({ model: 'kling-v3', prompt: 'slow' });
      const timedOut = await runHere(['wait', created.id, '--timeout', '0.5'], { KLING_GATEWAY_URL: slow.url });
      expect([timedOut.code, timedOut.stderr]).toEqual([8, expect.stringContaining(`video ${created.id} is still queued`)]);
      // Waiting ran out, the video did not: the next step is said, as after Ctrl-C.
      expect(timedOut.stderr).toContain(`video ${created.id} goes on at the gateway; follow it with: kling-gateway wait ${created.id}\n`);
      const generated = await runHere(['generate', 'slow too', '--model', 'kling-v3', '--timeout', '0.5'], { KLING_GATEWAY_URL: slow.url });
      const generatedId = /video (vid_\S+) is still/.exec(generated.stderr)?.[1];
      expect([generated.code, generated.stderr]).toEqual([8, expect.stringContaining(`video ${generatedId} goes on at the gateway; follow it with: kling-gateway wait ${generatedId}\n`)]);
      // Downloaded too early: how to get it once it is done.
      const early = await runHere(['download', created.id], { KLING_GATEWAY_URL: slow.url });
      expect([early.code, early.stderr]).toEqual([8, expect.stringMatching(new RegExp(`^error: video ${created.id} is still (queued|processing); to save it once it is done: kling-gateway wait ${created.id}\\n$`))]);
      // Run as `npx kling-gateway` in a clone, where no `kling-gateway` is on the shell's PATH: the hints say npx.
      const viaNpx = await runCliCaptured(['wait', created.id, '--timeout', '0.5'], {
        env: { KLING_GATEWAY_URL: slow.url, KLING_GATEWAY_API_KEY: TENANT_KEY, npm_command: 'exec' },
        script: '/home/me/kling-gateway/node_modules/.bin/kling-gateway',
      });
      expect(viaNpx.stderr).toContain(`video ${created.id} goes on at the gateway; follow it with: npx kling-gateway wait ${created.id}\n`);
    } finally {
      await slow.close();
    }
  });

  it('generate --wait --json whose waiting runs out still prints the task on stdout, so a script has its id to wait on', async () => {
    const slow = await startLiveGateway({ sandbox: { queued_ms: 60_000, processing_ms: 60_000 } });
    try {
      const result = await runHere(['--json', 'generate', 'slow, followed by a script', '--model', 'kling-v3', '--wait', '--timeout', '0.5'], { KLING_GATEWAY_URL: slow.url });
      const made = (await new GatewayClient({ baseUrl: slow.url, apiKey: TENANT_KEY }).listVideos()).data;
      expect(made).toHaveLength(1);
      expect(result.code).toBe(8);
      // What `… --json | jq -r .id` reads: the task as last seen, still running.
      expect(JSON.parse(result.stdout)).toMatchObject({ id: made[0]!.id, object: 'video', status: 'queued' });
    } finally {
      await slow.close();
    }
  });

  it('check-config never shows a database password, in the URL\'s user part or in its query', async () => {
    for (const url of [
      'postgres://gateway:pg-pass-in-userinfo@db.example:5432/gateway?sslmode=require',
      'postgres://gateway@db.example:5432/gateway?sslmode=require&password=pg-pass-in-query',
      'postgresql://gateway@db.example/gateway?sslpassword=pg-pass-of-the-key&schema=gw',
      // No user name: libpq takes the system user's.
      'postgres://:pg-pass-without-user@db.example:5432/gateway',
      // An unescaped `@` in the password: URL parsers split the user part at the last one.
      'postgres://gateway:pg-pass@with-at@db.example:5432/gateway',
      'postgres://gate@way:pg-pass-after-at-user@db.example:5432/gateway',
    ]) {
      for (const json of [false, true]) {
        const checked = await runHere([...(json ? ['--json'] : []), 'check-config', join(REPO, 'config.yaml')], { DATABASE_URL: url });
        expect(checked.code, checked.stderr).toBe(0);
        expect(checked.stdout).toContain('db.example');
        expect(`${checked.stdout}${checked.stderr}`).not.toMatch(/pg-pass|with-at/);
      }
    }
  });

  it('check-config never shows the credentials of an upstream base URL (sent as Basic auth)', async () => {
    const env = { GATEWAY_API_KEYS: 'ops:ops-key-123', FREEPIK_API_KEY: 'fpk-live-secret-value' };
    for (const baseUrl of ['https://reseller:basic-pass@with-at@api.reseller.example/v1', 'https://token-as-user-name@api.reseller.example/v1']) {
      for (const json of [false, true]) {
        const checked = await runHere([...(json ? ['--json'] : []), 'check-config', join(REPO, 'config.yaml')], { ...env, FREEPIK_BASE_URL: baseUrl });
        expect(checked.code, checked.stderr).toBe(0);
        expect(checked.stdout).toContain('***@api.reseller.example/v1');
        expect(`${checked.stdout}${checked.stderr}`).not.toMatch(/basic-pass|with-at|token-as-user-name/);
      }
    }
  });

  it('check-config warns of two accounts of a provider with one key at one address, and still passes the file', async () => {
    const copied = join(workdir, 'freepik-copied-key.yaml');
    writeFileSync(
      copied,
      readFileSync(join(REPO, 'config.yaml'), 'utf8').replace(
        /^ {4}api_key: \$\{FREEPIK_API_KEY:-\}\n/m,
        '    accounts:\n      - { id: main, api_key: "${FREEPIK_API_KEY}" }\n      - { id: burst, api_key: "${FREEPIK_API_KEY}" }\n',
      ),
    );
    const checked = await runHere(['check-config', copied], { FREEPIK_API_KEY: 'fpk-live-secret-value', FREEPIK_WEBHOOK_SECRET: 'fpk-webhook-secret', GATEWAY_API_KEYS: 'acme:acme-key-123456' });
    expect(checked.code, checked.stderr).toBe(0);
    expect(`${checked.stdout}${checked.stderr}`).toContain(
      'providers.freepik.accounts[1].api_key: the key of accounts[0] (main), reached at the same address: unless a proxy there gives each account a key of its own, this is one upstream account, which gets twice its cap and rate windows',
    );
    expect(`${checked.stdout}${checked.stderr}`).not.toContain('fpk-live-secret-value');
  });

  it('check-config names a tenant with two keys (a key being rotated) once, with its key count', async () => {
    const env = { FREEPIK_API_KEY: 'fpk-live-secret-value', GATEWAY_API_KEYS: 'acme:acme-old-key-1,beta:beta-key-3,acme:acme-new-key-2', GATEWAY_WEBHOOK_SECRETS: 'acme:whsec_c2VjcmV0LW9mLWFjbWUtZm9yLXRlc3Rz' };
    const [human, json] = await Promise.all([
      runHere(['check-config', join(REPO, 'config.yaml')], env),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], env),
    ]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^ {2}tenants {5}acme \(2 keys, webhooks signed\), beta$/m);
    expect(JSON.parse(json.stdout).tenants).toEqual([
      { tenant: 'acme', keys: 2, webhook_secret: true },
      { tenant: 'beta', keys: 1, webhook_secret: false },
    ]);
    expect(`${human.stdout}${json.stdout}`).not.toMatch(/acme-old-key|acme-new-key|beta-key-3/);
  });

  it('check-config says how many webhook secrets a tenant and a provider\'s account hold while one is rotated, and no more than before for one', async () => {
    const rotating = {
      FREEPIK_API_KEY: 'fpk-live-secret-value',
      FREEPIK_WEBHOOK_SECRET: 'fpk-new-webhook-secret',
      FREEPIK_OLD_WEBHOOK_SECRET: 'fpk-old-webhook-secret',
      GATEWAY_API_KEYS: 'acme:acme-key-123456,beta:beta-key-123456',
      GATEWAY_WEBHOOK_SECRETS: 'acme:whsec_c2VjcmV0LW9mLWFjbWUtZm9yLXRlc3Rz,acme:whsec_b2xkLXNlY3JldC1vZi1hY21lLWZvcg==,beta:whsec_YmV0YS1zZWNyZXQtZm9yLXRlc3Rz',
    };
    const accounts = join(workdir, 'freepik-rotating-accounts.yaml');
    writeFileSync(
      accounts,
      readFileSync(join(REPO, 'config.yaml'), 'utf8').replace(
        /^ {4}api_key: \$\{FREEPIK_API_KEY:-\}\n/m,
        '    accounts:\n      - { id: main, api_key: "${FREEPIK_API_KEY}" }\n      - { id: burst, api_key: "${FREEPIK_BURST_API_KEY:-fpk-live-burst-value}", webhook_secret: "${FREEPIK_WEBHOOK_SECRET}" }\n',
      ),
    );
    const one = { ...rotating, FREEPIK_OLD_WEBHOOK_SECRET: undefined, GATEWAY_WEBHOOK_SECRETS: 'acme:whsec_c2VjcmV0LW9mLWFjbWUtZm9yLXRlc3Rz' };
    const [human, json, humanAccounts, jsonAccounts, single] = await Promise.all([
      runHere(['check-config', join(REPO, 'config.yaml')], rotating),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], rotating),
      runHere(['check-config', accounts], rotating),
      runHere(['--json', 'check-config', accounts], rotating),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], one),
    ]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^ {2}tenants {5}acme \(webhooks signed with 2 secrets\), beta \(webhooks signed\)$/m);
    expect(human.stdout).toMatch(/^ {2}freepik: webhooks verified with any of 2 secrets$/m);
    expect(JSON.parse(json.stdout).tenants).toEqual([
      { tenant: 'acme', keys: 1, webhook_secret: true, webhook_secrets: 2 },
      { tenant: 'beta', keys: 1, webhook_secret: true },
    ]);
    expect(JSON.parse(json.stdout).providers[0]).toMatchObject({ id: 'freepik', webhooks: true, accounts: [{ id: 'default', max_in_flight: 20, webhook_secrets: 2 }] });
    // Each account counts its own secrets, or the provider's where it has none of its own.
    expect(humanAccounts.stdout).toMatch(/^ {2}freepik accounts: main \(cap 20, 2 webhook secrets\), burst \(cap 20\)$/m);
    expect(JSON.parse(jsonAccounts.stdout).providers[0].accounts).toEqual([
      { id: 'main', max_in_flight: 20, webhook_secrets: 2 },
      { id: 'burst', max_in_flight: 20 },
    ]);
    // One secret each: the plan as it always was.
    expect(JSON.parse(single.stdout).tenants).toEqual([
      { tenant: 'acme', keys: 1, webhook_secret: true },
      { tenant: 'beta', keys: 1, webhook_secret: false },
    ]);
    expect(JSON.parse(single.stdout).providers[0].accounts).toEqual([{ id: 'default', max_in_flight: 20 }]);
    expect(`${human.stdout}${json.stdout}${humanAccounts.stdout}${jsonAccounts.stdout}`).not.toMatch(/webhook-secret|whsec_|acme-key|beta-key/);
  });

  it('check-config warns about a misspelt variable, which leaves the gateway in the sandbox, without its value', async () => {
    const env = { GATEWAY_API_KEYS: 'acme:acme-key-123456', FREEPIK_APIKEY: 'fpk-live-secret-value' };
    const [human, json] = await Promise.all([
      runHere(['check-config', join(REPO, 'config.yaml')], env),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], env),
    ]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain('deployment  sandbox');
    expect(human.stderr).toContain('warning: environment variable FREEPIK_APIKEY is set, but config.yaml reads no such variable (did you mean FREEPIK_API_KEY?): it is ignored');
    expect(JSON.parse(json.stdout).warnings).toEqual([expect.stringContaining('FREEPIK_APIKEY is set, but config.yaml reads no such variable')]);
    expect(`${human.stdout}${human.stderr}${json.stdout}${json.stderr}`).not.toContain('fpk-live-secret-value');
  });

  it('check-config warns when a live deployment\'s public URL is loopback or plain http, where upstream webhooks and content links cannot go', async () => {
    const live = { GATEWAY_API_KEYS: 'acme:acme-key-123456', FREEPIK_API_KEY: 'fpk-live-secret-value', FREEPIK_WEBHOOK_SECRET: 'fpk-webhook-secret-value' };
    const [loopback, named, plain, secure, sandbox] = await Promise.all([
      runHere(['check-config', join(REPO, 'config.yaml')], live),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], { ...live, PUBLIC_URL: 'http://localhost:8080' }),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], { ...live, PUBLIC_URL: 'http://gateway.example.com' }),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], { ...live, PUBLIC_URL: 'https://gateway.example.com/kling' }),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], {}),
    ]);
    expect(loopback.code, loopback.stderr).toBe(0);
    expect(loopback.stderr).toContain(
      // Webhooks and callbacks are still asked for there: an upstream on this machine reaches them.
      'warning: server.public_url http://127.0.0.1:8080 is a loopback address in a live deployment: only an upstream on this machine can call back there (webhooks and callbacks from anywhere else are lost, and their tasks are followed by polling only), and the links in outputs[].url work on this machine only; set PUBLIC_URL to the https address clients and upstreams reach the gateway at',
    );
    expect(JSON.parse(named.stdout).warnings).toEqual([expect.stringContaining('server.public_url http://localhost:8080 is a loopback address in a live deployment')]);
    expect(JSON.parse(plain.stdout).warnings).toEqual([
      'server.public_url http://gateway.example.com is plain http in a live deployment: upstream callbacks (with their tokens) and the signed links in outputs[].url would travel unencrypted; put TLS in front of the gateway and set PUBLIC_URL to its https address',
    ]);
    expect([JSON.parse(secure.stdout).warnings, JSON.parse(sandbox.stdout).warnings]).toEqual([[], []]);
  });

  it('check-config warns when a live provider that signs its webhooks has no webhook secret, so its tasks are followed by polling only', async () => {
    const live = { GATEWAY_API_KEYS: 'acme:acme-key-123456', FREEPIK_API_KEY: 'fpk-live-secret-value', PUBLIC_URL: 'https://gateway.example.com' };
    const accounts = join(workdir, 'freepik-accounts.yaml');
    writeFileSync(
      accounts,
      readFileSync(join(REPO, 'config.yaml'), 'utf8').replace(
        /^ {4}api_key: \$\{FREEPIK_API_KEY:-\}\n/m,
        '    accounts:\n      - { id: main, api_key: "${FREEPIK_API_KEY}", webhook_secret: "${FREEPIK_WEBHOOK_SECRET:-}" }\n      - { id: burst, api_key: "${FREEPIK_BURST_API_KEY:-fpk-live-burst-value}" }\n',
      ).replace(/^ {4}webhook_secret: \["\$\{FREEPIK_WEBHOOK_SECRET:-\}", "\$\{FREEPIK_OLD_WEBHOOK_SECRET:-\}"\]\n/m, ''),
    );
    const [missing, set, keyless, oneAccount] = await Promise.all([
      runHere(['check-config', join(REPO, 'config.yaml')], live),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], { ...live, FREEPIK_WEBHOOK_SECRET: 'fpk-webhook-secret-value' }),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], { ...live, FREEPIK_API_KEY: undefined, KLING3API_API_KEY: 'k3-live-secret-value' }),
      runHere(['--json', 'check-config', accounts], { ...live, FREEPIK_WEBHOOK_SECRET: 'fpk-webhook-secret-value' }),
    ]);
    expect(missing.code, missing.stderr).toBe(0);
    expect(missing.stderr).toContain(
      'warning: providers.freepik.webhook_secret is not set: freepik is sent no webhook URL, so its tasks are followed by polling only, and a create whose answer was lost cannot be found again; set it to the secret freepik signs the webhooks of this key with',
    );
    expect([JSON.parse(set.stdout).warnings, JSON.parse(keyless.stdout).warnings]).toEqual([[], []]);
    expect(JSON.parse(oneAccount.stdout).warnings).toEqual([expect.stringMatching(/^providers\.freepik\.accounts\[1\]\.webhook_secret is not set: freepik is sent no webhook URL.*; set it to the secret freepik signs the webhooks of this key with$/)]);
  });

  it('check-config warns when the gateway\'s public URL has a port browsers and fetch never connect to', async () => {
    const [listen, named, fine] = await Promise.all([
      runHere(['check-config', join(REPO, 'config.yaml')], { PORT: '6000' }),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], { PUBLIC_URL: 'https://gateway.example.com:6667' }),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], { PORT: '8081' }),
    ]);
    expect(listen.code, listen.stderr).toBe(0);
    expect(listen.stderr).toContain('warning: server.public_url http://127.0.0.1:6000 has port 6000');
    expect([named.code, JSON.parse(named.stdout).warnings]).toEqual([0, [expect.stringContaining('server.public_url https://gateway.example.com:6667 has port 6667')]]);
    expect(JSON.parse(fine.stdout).warnings).toEqual([]);
  });

  it('check-config refuses cheapest routing over providers that price in different currencies, as the start does', async () => {
    const file = join(workdir, 'euro-kling3api.yaml');
    const shipped = readFileSync(join(REPO, 'config.yaml'), 'utf8');
    const euro = shipped.replace(/(\n {2}kling3api:[\s\S]*?\n {6}currency: )USD/, '$1EUR');
    expect(euro).not.toBe(shipped);
    writeFileSync(file, euro);
    const [human, json, other] = await Promise.all([
      runHere(['check-config', file], { ROUTING_STRATEGY: 'cheapest' }),
      runHere(['--json', 'check-config', file], { ROUTING_STRATEGY: 'cheapest' }),
      runHere(['--json', 'check-config', file], { ROUTING_STRATEGY: 'priority' }),
    ]);
    const problem = /^routing\.strategy: cheapest compares estimated amounts, but enabled providers price in different currencies \(providers\.<id>\.pricing\.currency — freepik, kling-legacy: USD; kling3api: EUR\)/;
    expect([human.code, human.stdout.split('\n')[0]]).toEqual([ExitCode.badConfig, `${file}: not valid`]);
    expect(human.stderr.replace(/^error: /m, '')).toMatch(new RegExp(problem.source, 'm'));
    expect(json.code).toBe(ExitCode.badConfig);
    expect(JSON.parse(json.stdout).problems).toEqual([expect.stringMatching(problem)]);
    expect([other.code, JSON.parse(other.stdout).valid]).toEqual([0, true]);
  });

  it('check-config refuses a budget in a currency a provider the tenant can use does not price in, as the start does', async () => {
    const file = join(workdir, 'euro-budget.yaml');
    const shipped = readFileSync(join(REPO, 'config.yaml'), 'utf8');
    writeFileSync(file, `${shipped}\ntenants:\n  dev:\n    budget: { amount: 50, currency: EUR, period: month }\n`);
    const [human, json] = await Promise.all([runHere(['check-config', file]), runHere(['--json', 'check-config', file])]);
    const problem = /^tenants\.dev\.budget\.currency: EUR, but provider freepik prices in USD; budgets are not converted between currencies/;
    expect([human.code, human.stdout.split('\n')[0]]).toEqual([ExitCode.badConfig, `${file}: not valid`]);
    expect(human.stderr.replace(/^error: /m, '')).toMatch(new RegExp(problem.source, 'm'));
    expect(json.code).toBe(ExitCode.badConfig);
    expect(JSON.parse(json.stdout).problems).toContainEqual(expect.stringMatching(problem));
  });

  it('check-config says where copies go, and warns when the gateway could not write there', async () => {
    const file = join(workdir, 'not-a-folder');
    writeFileSync(file, 'a file, where the outputs folder would go');
    const [blocked, fine, passthrough] = await Promise.all([
      runHere(['check-config', join(REPO, 'config.yaml')], { STORAGE_PATH: join(file, 'outputs') }),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], { STORAGE_PATH: join(workdir, 'unmade', 'outputs') }),
      runHere(['--json', 'check-config', join(REPO, 'config.yaml')], { STORAGE_PATH: join(file, 'outputs'), STORAGE_MODE: 'passthrough' }),
    ]);
    expect(blocked.code, blocked.stderr).toBe(0);
    expect(blocked.stdout).toContain(`storage     copies to filesystem:${join(file, 'outputs')}`);
    expect(blocked.stderr).toContain(`warning: storage.filesystem.path: ${join(file, 'outputs')} cannot be written`);
    expect(blocked.stderr).toContain('the gateway would not start on this machine');
    const plan = JSON.parse(fine.stdout);
    expect([plan.storage, plan.warnings]).toEqual([{ mode: 'copy', where: `filesystem:${join(workdir, 'unmade', 'outputs')}` }, []]);
    // Nothing is made by the check.
    expect(existsSync(join(workdir, 'unmade'))).toBe(false);
    expect(JSON.parse(passthrough.stdout)).toMatchObject({ storage: { mode: 'passthrough' }, warnings: [] });
  });

  it('check-config refuses a WORKERS the gateway would refuse at start', async () => {
    const [word, memory] = await Promise.all([
      runHere(['check-config', join(REPO, 'config.yaml')], { WORKERS: 'lots' }),
      runHere(['check-config', join(REPO, 'config.yaml')], { WORKERS: '2', DATABASE_URL: 'sqlite::memory:' }),
    ]);
    expect([word.code, word.stderr]).toEqual([78, expect.stringContaining('WORKERS must be a whole number from 1 to 64, or auto (got "lots")')]);
    expect([memory.code, memory.stderr]).toEqual([78, expect.stringContaining('WORKERS=2 needs a database the workers can share')]);
    const two = await runHere(['--json', 'check-config', join(REPO, 'config.yaml')], { WORKERS: '2' });
    expect([two.code, JSON.parse(two.stdout).workers]).toEqual([0, 2]);
  });

  it('check-config shows what would run without secrets, and names the field of a bad file', async () => {
    const sandbox = await runHere(['check-config', join(REPO, 'config.yaml')]);
    expect(sandbox.code, sandbox.stderr).toBe(0);
    expect(sandbox.stdout).toContain('deployment  sandbox (no upstream key: built-in simulators)');
    expect(sandbox.stdout).toContain('metrics     open (sandbox)');
    expect(sandbox.stdout).toMatch(/^freepik +simulator +loopback simulator +1 +20 /m);

    const live = await runHere(['--json', 'check-config', join(REPO, 'config.yaml')], { FREEPIK_API_KEY: 'fpk-live-secret-value', GATEWAY_API_KEYS: 'dev:dev-key-live-123,ops:ops-key-123' });
    expect(live.code, live.stderr).toBe(0);
    expect(live.stdout).not.toContain('fpk-live-secret-value');
    expect(live.stdout).not.toContain('ops-key-123');
    expect(live.stdout).not.toContain('dev-key-live-123');
    const plan = JSON.parse(live.stdout);
    expect(plan.deployment).toBe('live');
    expect(plan.metrics).toBe('loopback only');
    expect(plan.providers.map((provider: { id: string; mode: string }) => [provider.id, provider.mode])).toEqual([
      ['freepik', 'live'],
      ['kling3api', 'disabled'],
      ['kling-legacy', 'disabled'],
    ]);
    // Each disabled provider names the credentials its own block takes.
    expect(plan.providers.map((provider: { reason: string | null }) => provider.reason?.split(' (')[0] ?? null)).toEqual([
      null,
      'no api_key configured',
      'no api_key, nor access_key and secret_key, configured',
    ]);
    // Live: no shipped sandbox secret fills in; GATEWAY_WEBHOOK_SECRETS or a tenants block would.
    expect(plan.tenants).toEqual([
      { tenant: 'dev', keys: 1, webhook_secret: false },
      { tenant: 'ops', keys: 1, webhook_secret: false },
    ]);

    // Accounts (here on Kling's own API, signed keys) make a provider live, each with its cap, never showing a key.
    const withAccounts = join(workdir, 'accounts.yaml');
    writeFileSync(
      withAccounts,
      [
        'server: { public_url: "https://gateway.example.com" }',
        'database: { url: "sqlite::memory:" }',
        'auth: { api_keys: "ops:ops-key-123" }',
        'providers:',
        '  kling-legacy:',
        '    region: singapore',
        '    max_in_flight: 4',
        '    accounts:',
        '      - { id: team-a, access_key: ak-team-a, secret_key: sk-team-a-secret }',
        '      - { id: team-b, api_key: kl-team-b-secret, max_in_flight: 9 }',
      ].join('\n'),
    );
    const accounts = await runHere(['--json', 'check-config', withAccounts]);
    expect(accounts.code, accounts.stderr).toBe(0);
    expect(accounts.stdout).not.toMatch(/sk-team-a-secret|kl-team-b-secret/);
    const legacy = JSON.parse(accounts.stdout).providers.find((provider: { id: string }) => provider.id === 'kling-legacy');
    expect(legacy).toMatchObject({
      mode: 'live',
      base_url: 'https://api-singapore.klingai.com',
      max_in_flight: 13,
      accounts: [
        { id: 'team-a', max_in_flight: 4 },
        { id: 'team-b', max_in_flight: 9 },
      ],
    });
    const shown = await runHere(['check-config', withAccounts]);
    expect(shown.stdout).toContain('kling-legacy accounts: team-a (cap 4), team-b (cap 9)');

    const shippedKey = await runHere(['check-config', join(REPO, 'config.yaml')], { FREEPIK_API_KEY: 'fpk-live-secret-value' });
    expect(shippedKey.code).toBe(78);
    expect(shippedKey.stderr).toContain('the shipped sandbox key "dev-key" is in use while an upstream key is set (a live deployment); set GATEWAY_API_KEYS');
    expect(shippedKey.stderr).not.toContain('fpk-live-secret-value');

    const broken = join(workdir, 'broken.yaml');
    writeFileSync(broken, readFileSync(join(REPO, 'config.yaml'), 'utf8').replace('timeout_ms: 30000', 'timeout_ms: -5'));
    const refused = await run(['check-config', broken]);
    expect(refused.code).toBe(78);
    expect(refused.stderr).toMatch(/providers\.freepik\.timeout_ms: /);
  });

  it('migrate brings a database to the current schema and says what it applied', async () => {
    const url = `sqlite:${join(workdir, 'migrate.db')}`;
    const first = await run(['migrate', '--database-url', url]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^ {2}0001_initial +applied now$/m);
    const second = await runHere(['--json', 'migrate', '--database-url', url]);
    const report = JSON.parse(second.stdout);
    expect(report.migrations.map((migration: { name: string }) => migration.name)).toContain('0001_initial');
    expect(report.migrations.every((migration: { now: boolean }) => migration.now === false)).toBe(true);

    // A database it cannot reach is named without its password, with a user name or without one.
    const unreachable = await Promise.all(
      ['postgres://gateway:pg-pass-1@127.0.0.1:1/db', 'postgres://:pg-pass-2@127.0.0.1:1/db'].map((database) => runHere(['migrate', '--database-url', database])),
    );
    for (const result of unreachable) {
      expect([result.code, result.stderr]).toEqual([9, expect.stringContaining('could not reach the database')]);
      expect(result.stderr).not.toMatch(/pg-pass/);
    }
  });

  it('migrate --database-url with a URL that names no database is a command-line error (2), not "try again later" (9)', async () => {
    for (const database of ['mysql://gateway@db/gateway', '']) {
      const refused = await runHere(['migrate', '--database-url', database]);
      expect([refused.code, refused.stderr]).toEqual([
        ExitCode.usage,
        expect.stringContaining('--database-url must start with sqlite: or postgres://'),
      ]);
      expect(refused.stderr).not.toMatch(/gateway@/);
    }
  });
});
