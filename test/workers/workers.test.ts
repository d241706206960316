/**
 * `WORKERS=2` on a SQLite file, as `npm start` runs it (the sources through tsx): a primary and
 * two worker processes on one port and one store. What a user sees: both workers answer; every
 * task ends once, with one accepted attempt; the per-tenant create limit counts across both; a
 * scrape of `/metrics` adds both up (and keeps what a dead worker counted); a `?wait` held by one
 * worker is woken by a change another made; a worker killed with SIGKILL is replaced, and its
 * leases and the trial calls it held on accounts in doubt end at once; SIGTERM stops all.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compiledBuild, processAlive, startGatewayProcess, workerPidsOf } from '../support/gateway-process.js';

const KEY = { authorization: 'Bearer dev-key', 'content-type': 'application/json' };
/** A second tenant, with a create limit of its own, for the tests after the limit's. */
const OPS = { authorization: 'Bearer ops-key-123456', 'content-type': 'application/json' };
const CREATES_PER_MINUTE = 30;

interface LogLine {
  worker?: number;
  msg?: string;
  owner?: string;
  pid?: number;
  req?: { method: string; url: string };
}

let child: ChildProcess;
let base: string;
let dbFile: string;
const lines: LogLine[] = [];

function waitForLine(test: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      const found = lines.find(test);
      if (found) return resolve(found);
      // A gateway that ended, or one still starting when the time is up: say what it last logged.
      const ended = child.exitCode ?? child.signalCode;
      if (ended !== null || Date.now() - started > timeoutMs) {
        const last = lines.slice(-5).map((line) => line.msg).join(' | ');
        return reject(new Error(`log line never came (${ended !== null ? `the gateway ended: ${ended}` : `${timeoutMs} ms`}; last lines: ${last || 'none'})`));
      }
      setTimeout(check, 50);
    };
    check();
  });
}

async function create(body: Record<string, unknown>, headers: Record<string, string> = KEY): Promise<{ status: number; id?: string }> {
  const response = await fetch(`${base}/v1/videos`, { method: 'POST', headers, body: JSON.stringify(body) });
  const json = (await response.json()) as { id?: string };
  if (response.status === 400) throw new Error(`create refused: ${JSON.stringify(json)}`);
  return { status: response.status, id: json.id };
}

interface Task {
  id: string;
  status: string;
  attempts: { provider: string; outcome: string }[];
}

async function waitTerminal(id: string, headers: Record<string, string> = KEY): Promise<Task> {
  for (;;) {
    const response = await fetch(`${base}/v1/videos/${id}?wait=30`, { headers });
    const task = (await response.json()) as Task;
    if (!['queued', 'processing'].includes(task.status)) return task;
  }
}

const workerPids = () => workerPidsOf(child);

const alive = processAlive;

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error('condition never held');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Makes each of `owners` hold the trial call of an account in doubt (one of its own), for a minute. */
function holdTrials(owners: string[]): void {
  const db = new SqliteDatabase(dbFile, { timeout: 5_000 });
  try {
    const hold = db.prepare(
      'INSERT INTO provider_state (key, failures, cooldown_until, updated_at, opened_at, trial_owner, trial_until) VALUES (?, 5, 0, ?, ?, ?, ?)',
    );
    for (const owner of owners) hold.run(`trial-of:${owner}`, Date.now(), Date.now(), owner, Date.now() + 60_000);
  } finally {
    db.close();
  }
}

/** Who holds the trial call of each account (null: nobody). */
function trialOwners(): Map<string, string | null> {
  const db = new SqliteDatabase(dbFile, { readonly: true });
  try {
    const rows = db.prepare('SELECT key, trial_owner AS owner FROM provider_state').all() as { key: string; owner: string | null }[];
    return new Map(rows.map((row) => [row.key, row.owner]));
  } finally {
    db.close();
  }
}

function metricValue(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((each) => each.startsWith(`${name}{`) && each.includes(labels));
  return line ? Number(line.split(' ').pop()) : 0;
}

beforeAll(async () => {
  compiledBuild();
  const dir = mkdtempSync(join(tmpdir(), 'kg-workers-'));
  dbFile = join(dir, 'gw.db');
  const started = await startGatewayProcess(
    {
      WORKERS: '2',
      HOST: '127.0.0.1',
      DATABASE_URL: `sqlite:${dbFile}`,
      STORAGE_PATH: join(dir, 'outputs'),
      SANDBOX_QUEUED_MS: '200',
      SANDBOX_PROCESSING_MS: '1000',
      GATEWAY_API_KEYS: 'dev:dev-key,ops:ops-key-123456',
      TENANT_CREATES_PER_MINUTE: String(CREATES_PER_MINUTE),
      LOG_LEVEL: 'info',
    },
    (part) => {
      try {
        lines.push(JSON.parse(part) as LogLine);
        if (/"level":[56]0/.test(part)) process.stderr.write(part + '\n');
      } catch {
        // not a log line
      }
    },
    60_000,
    // The compiled build, as `npm start` runs it: three processes start, each through tsx otherwise.
    { compiled: true },
  );
  child = started.child;
  base = started.url;
}, 90_000);

afterAll(async () => {
  if (child.exitCode === null) {
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
  }
});

describe('WORKERS=2 on a SQLite file', () => {
  it('serves creates from both workers, ends each task once, and counts the create limit across both', { timeout: 90_000 }, async () => {
    // More creates than the tenant's limit, at once: the limit is the tenant's, not each worker's.
    const answers = await Promise.all(
      Array.from({ length: CREATES_PER_MINUTE + 10 }, (_, index) =>
        create({ model: 'kling-v3', prompt: `worker fox ${index}`, duration: 5, ...(index % 2 ? { routing: { providers: ['kling3api'] } } : {}) }),
      ),
    );
    const accepted = answers.filter((answer) => answer.status === 202);
    expect(accepted).toHaveLength(CREATES_PER_MINUTE);
    expect(answers.filter((answer) => answer.status === 429)).toHaveLength(10);

    // Each worker's request lines come through its own buffered log stream: they may trail the answers.
    const served = () => [...new Set(lines.filter((line) => line.req?.method === 'POST' && line.req.url === '/v1/videos').map((line) => line.worker))].sort();
    await expect.poll(served, { timeout: 10_000 }).toEqual([1, 2]);

    const tasks = await Promise.all(accepted.map((answer) => waitTerminal(answer.id!)));
    for (const task of tasks) {
      expect(task.status).toBe('succeeded');
      expect(task.attempts.filter((attempt) => attempt.outcome === 'accepted')).toHaveLength(1);
    }

    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metricValue(metrics, 'kling_gateway_http_requests_total', 'route="/v1/videos",status="202"')).toBe(CREATES_PER_MINUTE);
    expect(metricValue(metrics, 'kling_gateway_http_requests_total', 'route="/v1/videos",status="429"')).toBe(10);
  });

  it('wakes a ?wait held by one worker when another worker finishes the task', { timeout: 60_000 }, async () => {
    const { status, id } = await create({ model: 'kling-v3', prompt: 'a fox waiting', duration: 5 }, OPS);
    expect(status).toBe(202);
    const started = Date.now();
    // Several waits on connections of their own: the primary spreads them over both workers.
    const waits = await Promise.all(
      Array.from({ length: 4 }, () => fetch(`${base}/v1/videos/${id}?wait=30`, { headers: OPS }).then((r) => r.json() as Promise<Task>)),
    );
    const took = Date.now() - started;
    for (const task of waits) expect(task.status).toBe('succeeded');
    // The simulated job takes 1.2 s; a waiter nobody told would read the task again only after 5 s.
    expect(took).toBeLessThan(4_500);
  });

  it('replaces a worker killed with SIGKILL, ends its leases and trial calls at once, and every task still ends once', { timeout: 90_000 }, async () => {
    const workersBefore = workerPids();
    expect(workersBefore).toHaveLength(2);
    const victim = workersBefore[0]!;
    // Both workers have answered creates by now (the first test): the scrape adds both up.
    const countedBefore = metricValue(await (await fetch(`${base}/metrics`)).text(), 'kling_gateway_http_requests_total', 'route="/v1/videos",status="202"');
    expect(countedBefore).toBeGreaterThanOrEqual(CREATES_PER_MINUTE);
    // Creates under way on both workers (polled kling3api and Freepik's webhooks) when one dies.
    const creates = Array.from({ length: 16 }, (_, index) =>
      create({ model: 'kling-v3', prompt: `fox under fire ${index}`, duration: 5, ...(index % 2 ? { routing: { providers: ['kling3api'] } } : {}) }, OPS).catch(
        () => ({ status: 0 }),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 150));
    // Each worker holds the single trial call of an account in doubt.
    const owners = workersBefore.map((pid) => [...lines].reverse().find((line) => line.pid === pid && line.msg?.endsWith(' serving'))?.owner);
    holdTrials(owners.map((owner) => owner!));
    process.kill(victim, 'SIGKILL');
    // A create the dead worker was answering fails on the client's side; the others are answered.
    const answered = (await Promise.all(creates)).flatMap((answer) => ('id' in answer && answer.status === 202 ? [answer.id!] : []));

    const died = await waitForLine((line) => line.msg?.includes('died; replacing it') === true, 10_000);
    // The first death is replaced after 0.5 s; only replacements that keep dying young wait longer.
    expect(died.msg).toContain('replacing it in 500 ms');
    // The dead worker's leases are ended by the primary at once (it logs the death first, then
    // writes), not left to run out (60 s): waited for up to 20 s, the primary being busy replacing
    // the worker on a loaded machine.
    const db = new SqliteDatabase(dbFile, { readonly: true });
    try {
      const held = () => (db.prepare('SELECT count(*) AS n FROM tasks WHERE lease_owner = ? AND lease_until > ?').get(died.owner, Date.now() + 1_000) as { n: number }).n;
      await waitFor(() => held() === 0, 20_000);
    } finally {
      db.close();
    }
    // The trial call the dead worker held is given back: the others may probe that account now,
    // not when the call's timeout (plus 5 s) runs out. The survivor's is still its own.
    expect(died.owner).toBe(owners[0]);
    await waitFor(() => trialOwners().get(`trial-of:${owners[0]}`) === null, 20_000);
    expect(trialOwners().get(`trial-of:${owners[1]}`)).toBe(owners[1]);
    // A replacement serves in its place.
    await waitFor(() => workerPids().length === 2 && !workerPids().includes(victim), 30_000);
    // What the dead worker counted is still counted: a counter that went down would read to
    // Prometheus as a restart, and every rate of the process would spike.
    const countedAfter = metricValue(await (await fetch(`${base}/metrics`)).text(), 'kling_gateway_http_requests_total', 'route="/v1/videos",status="202"');
    expect(countedAfter).toBeGreaterThanOrEqual(countedBefore);

    // Every task of the tenant ends, well before a lease would have run out, and none twice.
    const listed = (await (await fetch(`${base}/v1/videos?limit=100`, { headers: OPS })).json()) as { data: Task[] };
    const ended = await Promise.all(listed.data.map((task) => waitTerminal(task.id, OPS)));
    expect(listed.data.map((task) => task.id)).toEqual(expect.arrayContaining(answered));
    // On failure: the task and the gateway's log lines about it.
    const story = (task: Task) => JSON.stringify({ task, log: lines.filter((line) => JSON.stringify(line).includes(task.id)) });
    for (const task of ended) {
      expect(task.attempts.filter((attempt) => attempt.outcome === 'accepted').length, story(task)).toBeLessThanOrEqual(1);
    }
    // What a client was told was accepted succeeds; a create the dead worker never answered may end otherwise.
    for (const task of ended.filter((each) => answered.includes(each.id))) expect(task.status, story(task)).toBe('succeeded');
  });

  it('answers a request that came while every worker was being replaced once a replacement serves, not 503 after the hold', { timeout: 60_000 }, async () => {
    const workers = workerPids();
    expect(workers).toHaveLength(2);
    const died = lines.filter((line) => line.msg?.includes('died; replacing it')).length;
    for (const pid of workers) process.kill(pid, 'SIGKILL');
    await waitFor(() => lines.filter((line) => line.msg?.includes('died; replacing it')).length === died + 2, 10_000);
    // No worker serves: the primary holds the connection for the first replacement that does.
    const status = await new Promise<number | string>((resolve) => {
      // A connection of its own: one kept alive from before went to a worker that is gone.
      const req = request(`${base}/v1/providers`, { agent: false, headers: OPS }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', (error) => resolve(error.message));
      req.end();
    });
    expect(status).toBe(200);
    await waitFor(() => workerPids().length === 2, 30_000);
  });

  it('stops every worker on SIGTERM and exits 0', { timeout: 60_000 }, async () => {
    const workers = workerPids();
    child.kill('SIGTERM');
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    for (const pid of workers) expect(alive(pid)).toBe(false);
  });
});
