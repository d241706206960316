/**
 * What the chaos runs (`npm run chaos`, `test/chaos/`) do as a client of the gateway and what
 * they read back: creates on kept-alive connections, every task of the tenant, and the upstream
 * creates each simulator counted, grouped by the gateway task they were made for (every chaos
 * create carries a prompt of its own, so the simulators' record of bodies counts creates per task).
 */
import http from 'node:http';

export const CHAOS_KEY = 'dev-key';
const headers = { authorization: `Bearer ${CHAOS_KEY}`, 'content-type': 'application/json' };

/** How one create ended for the client. */
export interface CreateAnswer {
  /** HTTP status, or `error` when the connection failed without an answer. */
  status: number | 'error';
  /** The error code of a failed connection (`ECONNREFUSED`, `ECONNRESET`, …). */
  errorCode?: string;
  /** The task id of a 2xx answer. */
  taskId?: string;
  /** Whether the answer asked to close the connection. */
  connectionClose?: boolean;
  /** When the answer (or the failure) arrived, epoch ms. */
  at: number;
}

/** A chaos create: a prompt nobody else uses, so upstream creates can be counted per task. */
export function chaosRequest(label: string, providers?: string[]): Record<string, unknown> {
  return {
    model: 'kling-v3',
    prompt: `chaos ${label}`,
    duration: 5,
    ...(providers ? { routing: { providers } } : {}),
  };
}

/** POST /v1/videos on `agent` (kept alive), with an Idempotency-Key. */
export function postCreate(agent: http.Agent, baseUrl: string, body: unknown, idempotencyKey: string, timeoutMs = 60_000): Promise<CreateAnswer> {
  const payload = JSON.stringify(body);
  return new Promise((resolve) => {
    const req = http.request(
      `${baseUrl}/v1/videos`,
      { method: 'POST', agent, headers: { ...headers, 'idempotency-key': idempotencyKey, 'content-length': Buffer.byteLength(payload) }, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          let taskId: string | undefined;
          try {
            taskId = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: string }).id;
          } catch {
            taskId = undefined;
          }
          resolve({
            status: res.statusCode ?? 0,
            ...(res.statusCode && res.statusCode < 300 && taskId ? { taskId } : {}),
            connectionClose: res.headers.connection === 'close',
            at: Date.now(),
          });
        });
        res.on('error', (error: NodeJS.ErrnoException) => resolve({ status: 'error', errorCode: error.code ?? error.message, at: Date.now() }));
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ status: 'error', errorCode: error.code ?? error.message, at: Date.now() }));
    req.end(payload);
  });
}

/** One task as the chaos runs read it. */
export interface ChaosTask {
  id: string;
  status: string;
  provider: string | null;
  provider_task_id: string | null;
  error: { code: string; message: string } | null;
  request: { prompt?: string };
  attempts: { provider: string; outcome: string; recovered_by?: string | null; message: string | null }[];
}

/** Every task of the chaos tenant, newest first. */
export async function listTasks(baseUrl: string): Promise<ChaosTask[]> {
  const tasks: ChaosTask[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `?limit=100&cursor=${encodeURIComponent(cursor)}` : '?limit=100';
    const response = await fetch(`${baseUrl}/v1/videos${query}`, { headers });
    if (!response.ok) throw new Error(`listing tasks: ${response.status} ${await response.text()}`);
    const page = (await response.json()) as { data: ChaosTask[]; next_cursor: string | null };
    tasks.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return tasks;
}

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

/** Waits until every task is finished (or `timeoutMs` passes); returns them as they are then. */
export async function waitUntilAllFinished(baseUrl: string, timeoutMs: number): Promise<ChaosTask[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const tasks = await listTasks(baseUrl);
    if (tasks.every((task) => TERMINAL.has(task.status)) || Date.now() > deadline) return tasks;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** A created upstream task as the simulator host reports it. */
export interface UpstreamTask {
  id: string;
  body: Record<string, unknown>;
}

/** Upstream creates per chaos prompt, over every simulator. */
export function createsPerPrompt(upstream: Record<string, readonly UpstreamTask[]>): Map<string, { provider: string; id: string }[]> {
  const byPrompt = new Map<string, { provider: string; id: string }[]>();
  for (const [provider, tasks] of Object.entries(upstream)) {
    for (const task of tasks) {
      const prompt = typeof task.body.prompt === 'string' ? task.body.prompt : undefined;
      if (!prompt?.startsWith('chaos ')) continue;
      byPrompt.set(prompt, [...(byPrompt.get(prompt) ?? []), { provider, id: task.id }]);
    }
  }
  return byPrompt;
}

/** What a chaos run must never see, counted. */
export interface ChaosVerdict {
  tasks: number;
  /** Answered 2xx to a client but missing from the gateway. */
  lost: number;
  /** Tasks with more than one upstream create. */
  doubleCreates: number;
  /** Upstream creates no gateway task tracks (a paid video nobody gets), by provider. */
  orphanedUpstream: Record<string, number>;
  /** Tasks that failed `interrupted` although the upstream holds them. */
  interruptedHeldUpstream: number;
  /** Every task that failed because the gateway stopped mid-create. */
  interrupted: number;
  /** Not finished when the run ended. */
  unfinished: number;
  /** Adopted after a lost create answer, by how. */
  recovered: Record<string, number>;
}

export function judge(tasks: readonly ChaosTask[], answeredIds: ReadonlySet<string>, upstream: Record<string, readonly UpstreamTask[]>): ChaosVerdict {
  const byId = new Map(tasks.map((task) => [task.id, task]));
  const creates = createsPerPrompt(upstream);
  const verdict: ChaosVerdict = {
    tasks: tasks.length,
    lost: [...answeredIds].filter((id) => !byId.has(id)).length,
    doubleCreates: [...creates.values()].filter((list) => list.length > 1).length,
    orphanedUpstream: {},
    interruptedHeldUpstream: 0,
    interrupted: 0,
    unfinished: tasks.filter((task) => !TERMINAL.has(task.status)).length,
    recovered: {},
  };
  const tracked = new Set(tasks.filter((task) => task.provider_task_id).map((task) => `${task.provider}/${task.provider_task_id}`));
  for (const task of tasks) {
    const interrupted = task.attempts.some((attempt) => attempt.outcome === 'interrupted');
    const held = creates.get(task.request.prompt ?? '') ?? [];
    if (interrupted) verdict.interrupted += 1;
    if (interrupted && held.length > 0) verdict.interruptedHeldUpstream += 1;
    for (const attempt of task.attempts) {
      if (attempt.recovered_by) verdict.recovered[attempt.recovered_by] = (verdict.recovered[attempt.recovered_by] ?? 0) + 1;
    }
  }
  for (const list of creates.values()) {
    for (const create of list) {
      if (!tracked.has(`${create.provider}/${create.id}`)) verdict.orphanedUpstream[create.provider] = (verdict.orphanedUpstream[create.provider] ?? 0) + 1;
    }
  }
  return verdict;
}
