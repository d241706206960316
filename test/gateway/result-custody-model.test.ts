/**
 * Result custody under random orders of events (fast-check model-based test). Tasks on the three
 * providers succeed upstream (the built-in simulators, whose result files are on a file host this
 * test controls). The host answers each request for a file as a script drawn per output says: the
 * whole file, a body cut short (a `Content-Length` larger than what is sent, or a connection reset
 * mid-body), 403/404/410, 500/503, silence past `storage.idle_timeout_ms`, another file on a later
 * try, a redirect, an empty body, or a `Content-Length` over `storage.max_bytes`. Storage writes
 * fail on demand: on the filesystem, in node's file calls as a full or read-only disk answers them
 * (the temporary file cannot be opened, the disk fills mid-write, the flush fails); on S3
 * (s3rver), a proxy answers the object's uploads 503 SlowDown, the SDK's own retries included; on
 * both, a write that lands and whose answer is lost. The gateway restarts on the same database and
 * storage: between copies, mid-copy on SIGTERM, or mid-copy abruptly (the store as the dead
 * process left it, the task leased to it; its temporary file left behind; sometimes a whole file
 * already under the key, stored but never recorded).
 *
 * After every step, and once everything settled (the clock past every retry), what README
 * *Result custody* promises is checked through the API, the file host's log and the storage:
 *
 * - a task stays `processing` (its content 409) while an output is `pending`; once `succeeded`
 *   every output is `stored` or `not_stored`;
 * - each output ends as documented for the answers its file host gave and the faults its writes
 *   met: `stored` at the first whole file storage took, with that file's `sha256` and `bytes`; the
 *   `max_bytes` refusal at once; otherwise `not_stored` after `storage.max_attempts` tries with the
 *   last try's reason and "(gave up after N tries)", or "…on all N tries: its copy is gone"
 *   (`upstream_url_gone`) when every answer was 404/410; and no request for the file after that;
 * - a stored output's bytes in storage hash to its `sha256`, and `/content` serves exactly them
 *   (a range inside: 206 and its `Content-Range`; a range past the end: 416 and `bytes *\/size`);
 *   a not-stored one redirects (307) to its upstream URL, or is 410 when that is gone;
 * - another tenant's `/content` is 404, an index past the outputs 404;
 * - storage holds one object per stored output and nothing else once settled (a pending output's
 *   key may hold what a lost answer or a crash left until its copy ends); no temporary file but
 *   those an abrupt stop left, and the retention pass deletes them once old;
 * - every task was created upstream once (nothing paid twice).
 *
 * Fixed seed; 10 runs on the filesystem and 3 on S3, up to 14 steps each (about 20 s). Deeper:
 * `CUSTODY_MODEL_RUNS=100 CUSTODY_MODEL_SEED=<n>` (S3 runs a third as many);
 * `CUSTODY_MODEL_LOG=1` prints each run's steps and how its outputs ended.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import fc from 'fast-check';
import S3rver from 's3rver';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { ProviderSimulator } from '../../src/core/upstream/provider.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import type { ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import { FilesystemStorage } from '../../src/storage/filesystem-storage.js';
import type { ByteRange, ObjectStorage } from '../../src/storage/object-storage.js';
import { S3Storage } from '../../src/storage/s3-storage.js';
import { openStore } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { OTHER_TENANT_KEY, TENANT_KEY, TestGateway, testConfig, tempDatabaseUrl } from '../support/harness.js';
import { startModelGateway } from '../support/task-life-model.js';

const SEED = Number(process.env.CUSTODY_MODEL_SEED ?? 20261205);
const MAX_ATTEMPTS = 3;
const MAX_BYTES = 256 * 1024;
const HUGE = 5 * 1024 ** 3;
const PROVIDER_IDS = ['freepik', 'kling3api', 'kling-legacy'] as const;
type ProviderId = (typeof PROVIDER_IDS)[number];
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/**
 * Storage faults, injected into node's file calls as a full or read-only disk answers them, for
 * the one write they were armed for (`FaultyStorage`): the open of the temporary file, its
 * writes (a few bytes go down first), its flush.
 */
type FsFault = 'open' | 'writev' | 'fdatasync';
type StorageFault = FsFault | 'lost';
const injected = vi.hoisted(() => ({ next: undefined as undefined | { call: string; code: string }, byFd: new Map<number, { call: string; code: string }>() }));

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  const error = (code: string) => Object.assign(new Error(`${code}: injected`), { code });
  return {
    ...actual,
    open: (path: string, flags: string, ...rest: any[]) => {
      const callback = rest.at(-1);
      const fault = String(path).endsWith('.partial') ? injected.next : undefined;
      if (fault) injected.next = undefined;
      if (fault?.call === 'open') return setImmediate(() => callback(error(fault.code)));
      return (actual.open as any)(path, flags, ...rest.slice(0, -1), (failed: Error | null, fd: number) => {
        if (!failed && fault) injected.byFd.set(fd, fault);
        callback(failed, fd);
      });
    },
    writev: (fd: number, buffers: Buffer[], callback: any) => {
      const fault = injected.byFd.get(fd);
      if (fault?.call === 'writev') return actual.writev(fd, [buffers[0]!.subarray(0, 10)], () => callback(error(fault.code)));
      return actual.writev(fd, buffers, callback);
    },
    fdatasync: (fd: number, callback: any) => {
      const fault = injected.byFd.get(fd);
      if (fault?.call === 'fdatasync') return setImmediate(() => callback(error(fault.code)));
      return actual.fdatasync(fd, callback);
    },
    close: (fd: number, callback: any) => {
      injected.byFd.delete(fd);
      return actual.close(fd, callback);
    },
  };
});

/** What the file host answers one request with. */
type Answer =
  | { kind: 'full'; version: number }
  | { kind: 'short'; version: number }
  | { kind: 'reset'; version: number }
  | { kind: 'status'; status: 403 | 404 | 410 | 500 | 503 }
  | { kind: 'slow' }
  | { kind: 'redirect'; version: number }
  | { kind: 'empty' }
  | { kind: 'huge' }
  /** Part of the body, then nothing until the gateway stops (a restart mid-copy). */
  | { kind: 'hold' };

/** Answers that start a storage write (a 2xx video the gateway reads). */
const WRITES = new Set(['full', 'short', 'reset', 'slow', 'redirect', 'empty', 'hold']);

function bodyOf(path: string, version: number): Buffer {
  const seed = createHash('sha256').update(`${path}#${version}`).digest();
  const length = 2_000 + (seed.readUInt16BE(0) % 6_000);
  const body = Buffer.alloc(length);
  for (let offset = 0; offset < length; offset += 32) seed.copy(body, offset, 0, Math.min(32, length - offset));
  body.writeUInt32BE(version, 0);
  return body;
}

/** The file host: one script of answers per result path, then its tail answer for every later request. */
class ScriptedHost {
  readonly scripts = new Map<string, { queue: Answer[]; tail: Answer }>();
  /** Every answer given, per path (the redirect's second hop is not one). */
  readonly log = new Map<string, { answer: Answer; body?: Buffer; done: boolean }[]>();
  /** Paths by the task id in them, for scripts drawn before the upstream task existed. */
  resolve: (path: string) => { queue: Answer[]; tail: Answer } | undefined = () => undefined;
  private readonly open = new Set<ServerResponse>();
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.answer(req.url ?? '/', res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  holdNext(path: string): void {
    this.scriptOf(path)?.queue.unshift({ kind: 'hold' });
  }

  heldOpen(path: string): boolean {
    return (this.log.get(path) ?? []).some((entry) => entry.answer.kind === 'hold' && !entry.done);
  }

  /** Responses still being sent, other than held ones. */
  busy(): number {
    return [...this.open].filter((res) => !(res as any).held).length;
  }

  private scriptOf(path: string) {
    let script = this.scripts.get(path);
    if (!script) {
      script = this.resolve(path);
      if (script) this.scripts.set(path, script);
    }
    return script;
  }

  private answer(url: string, res: ServerResponse): void {
    const [path, query] = url.split('?') as [string, string | undefined];
    if (path.startsWith('/moved/')) {
      const version = Number(new URLSearchParams(query ?? '').get('v'));
      const body = bodyOf(path.slice('/moved'.length), version);
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': String(body.length) }).end(body);
      return;
    }
    const script = this.scriptOf(path);
    if (!script) {
      res.writeHead(404).end('no such file');
      return;
    }
    const answer = script.queue.shift() ?? script.tail;
    const entry: { answer: Answer; body?: Buffer; done: boolean } = { answer, done: false };
    if (!this.log.has(path)) this.log.set(path, []);
    this.log.get(path)!.push(entry);
    this.open.add(res);
    if (answer.kind === 'hold') (res as any).held = true;
    res.on('close', () => {
      entry.done = true;
      this.open.delete(res);
    });
    switch (answer.kind) {
      case 'full': {
        entry.body = bodyOf(path, answer.version);
        res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': String(entry.body.length) }).end(entry.body);
        return;
      }
      case 'short':
      case 'reset': {
        const body = bodyOf(path, answer.version);
        res.writeHead(200, { 'content-type': 'video/mp4', ...(answer.kind === 'short' ? { 'content-length': String(body.length) } : {}) });
        res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.socket?.destroy(), 5));
        return;
      }
      case 'status':
        res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(`status ${answer.status}`);
        return;
      case 'slow':
        res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': '5000' });
        res.write(Buffer.alloc(100, 7));
        return;
      case 'hold': {
        // A byte now and then (never silent for the idle limit) until the gateway stops.
        res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': '5000' });
        res.write(Buffer.alloc(100, 7));
        const trickle = setInterval(() => res.write(Buffer.alloc(1, 7)), 200);
        res.on('close', () => clearInterval(trickle));
        return;
      }
      case 'redirect':
        res.writeHead(302, { location: `/moved${path}?v=${answer.version}` }).end();
        entry.body = bodyOf(path, answer.version);
        return;
      case 'empty':
        res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': '0' }).end();
        return;
      case 'huge':
        res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': String(HUGE) });
        res.write(Buffer.alloc(100, 1));
        return;
    }
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

/**
 * The key an output's first copy is written under: a later copy (after the gateway's own storage
 * failed) writes under a key of its own, the first's with a drawn `-later-<token>` before the
 * extension. The model follows each output by its first key.
 */
function firstKeyOf(key: string): string {
  return key.replace(/-later-[A-Za-z0-9_-]{8}(?=\.[a-z0-9]+$)/, '');
}

/** Storage faults armed per task id (each for one write), and every write with the fault it met. */
class FaultLog {
  readonly armed = new Map<string, StorageFault[]>();
  /** Writes by key, in order: the fault each met (none: undefined). */
  readonly writes = new Map<string, (StorageFault | undefined)[]>();
  /** Writes on their way. */
  inFlight = 0;

  take(key: string): StorageFault | undefined {
    const taskId = [...this.armed.keys()].find((id) => key.includes(id));
    const fault = taskId ? this.armed.get(taskId)!.shift() : undefined;
    if (taskId && this.armed.get(taskId)!.length === 0) this.armed.delete(taskId);
    const first = firstKeyOf(key);
    if (!this.writes.has(first)) this.writes.set(first, []);
    this.writes.get(first)!.push(fault);
    return fault;
  }
}

/** The filesystem storage, its node file calls failing as armed (`injected`). */
class FaultyStorage extends FilesystemStorage {
  constructor(
    directory: string,
    readonly faults: FaultLog,
  ) {
    super(directory);
  }

  override async write(key: string, body: Readable, options: { contentType: string; signal?: AbortSignal }): Promise<void> {
    const fault = this.faults.take(key);
    if (fault && fault !== 'lost') injected.next = { call: fault, code: fault === 'open' ? 'EROFS' : 'ENOSPC' };
    const writing = super.write(key, body, options);
    injected.next = undefined;
    this.faults.inFlight++;
    try {
      await writing;
    } finally {
      this.faults.inFlight--;
    }
    if (fault === 'lost') throw new Error('connection reset after the write');
  }
}

/**
 * S3 (s3rver) behind a proxy that answers a write of an armed key with 503 SlowDown, every try
 * the SDK makes (its own retries included), as a store that keeps failing does.
 */
class FaultyS3 implements ObjectStorage {
  readonly kind = 's3';
  readonly description = 's3 behind a faulty proxy';
  constructor(
    private readonly inner: S3Storage,
    private readonly faults: FaultLog,
    private readonly failing: Set<string>,
  ) {}
  async write(key: string, body: Readable, options: { contentType: string; signal?: AbortSignal }): Promise<void> {
    const fault = this.faults.take(key);
    if (fault && fault !== 'lost') this.failing.add(key);
    this.faults.inFlight++;
    try {
      await this.inner.write(key, body, options);
    } finally {
      this.failing.delete(key);
      this.faults.inFlight--;
    }
    if (fault === 'lost') throw new Error('connection reset after the write');
  }
  read(key: string, range?: ByteRange) {
    return this.inner.read(key, range);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  close() {
    return this.inner.close();
  }
}

/** Where copies go, and how the test looks at them. */
interface Backend {
  name: string;
  /** An `open` fault fails the write before the body is read (the filesystem), not once it was (S3). */
  failsBeforeReading: boolean;
  config: Record<string, unknown>;
  /** One per gateway process (closing the gateway closes it). */
  open(): Promise<ObjectStorage>;
  /** Stored keys, and temporary files (the filesystem's). */
  files(): Promise<{ keys: string[]; partial: string[] }>;
  read(key: string): Promise<Buffer>;
  /** Puts a whole file under `key` (a process that died after storing it, before recording it). */
  put(key: string, bytes: Buffer): Promise<void>;
  /** The filesystem's temporary files: kept over an abrupt stop, and made old. */
  partials?: { save(): Map<string, Buffer>; restore(saved: Map<string, Buffer>): void; age(): void };
}

function filesystemBackend(directory: string, faults: FaultLog): Backend {
  return {
    name: 'filesystem',
    failsBeforeReading: true,
    config: { filesystem: { path: directory } },
    open: async () => new FaultyStorage(directory, faults),
    files: async () => storedFiles(directory),
    read: async (key) => readFileSync(join(directory, key)),
    put: async (key, bytes) => {
      mkdirSync(dirname(join(directory, key)), { recursive: true });
      writeFileSync(join(directory, key), bytes);
    },
    partials: {
      save: () => new Map(storedFiles(directory).partial.map((partial) => [partial, readFileSync(join(directory, partial))])),
      restore: (saved) => {
        for (const [partial, bytes] of saved) writeFileSync(join(directory, partial), bytes);
      },
      age: () => {
        const old = new Date(Date.now() - 3600_000);
        for (const partial of storedFiles(directory).partial) utimesSync(join(directory, partial), old, old);
      },
    },
  };
}

interface TaskModel {
  id: string;
  marker: string;
  provider: ProviderId;
  script: { queue: Answer[]; tail: Answer };
  path?: string;
  /** The last status read; `succeeded` is kept once read. */
  status: string;
}

class World {
  gateway!: TestGateway;
  readonly tasks: TaskModel[] = [];
  readonly log: string[] = [];
  /** Temporary files an abrupt stop left (they may stay until the retention pass finds them old). */
  readonly abandoned = new Set<string>();
  private sequence = 0;

  constructor(
    readonly clock: ManualClock,
    readonly host: ScriptedHost,
    readonly faults: FaultLog,
    readonly backend: Backend,
    readonly database: string,
    readonly endpoints: Map<string, ProviderEndpoint>,
    readonly simulators: Map<string, ProviderSimulator>,
  ) {
    host.resolve = (path) => {
      const id = path.replace(/^.*\//, '').replace(/\.[a-z0-9]+$/, '');
      for (const provider of PROVIDER_IDS) {
        const one = this.simulators.get(provider)!.tasks.find((task) => task.id === id || task.id === id.replace(/-\d+$/, ''));
        if (!one) continue;
        const record = this.tasks.find((task) => JSON.stringify(one.body).includes(task.marker));
        if (record) {
          record.path = path;
          return record.script;
        }
      }
      return undefined;
    };
  }

  async start(): Promise<void> {
    const config = testConfig({
      database: { url: this.database },
      storage: {
        mode: 'copy',
        ...this.backend.config,
        max_attempts: MAX_ATTEMPTS,
        max_bytes: MAX_BYTES,
        copy_timeout_ms: 10_000,
        idle_timeout_ms: 1_000,
      },
      limits: { creates_per_minute: 100_000 },
    });
    const gateway = await startModelGateway(config, this.endpoints, this.clock, {
      trustedResultOrigins: [this.host.url],
      objectStorage: await this.backend.open(),
    });
    const url = await gateway.listen(0, '127.0.0.1');
    gateway.setPublicUrl(url);
    this.gateway = new TestGateway(gateway, url, this.clock, this.simulators, this.endpoints, config, false);
  }

  nextMarker(): string {
    return `[c${++this.sequence}]`;
  }

  /** Lets what was started settle: worker passes, copies, webhooks in the air. */
  async settle(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 15));
    await this.gateway.gateway.runOnce();
  }

  upstreamCount(marker: string): number {
    return PROVIDER_IDS.reduce((sum, provider) => sum + this.simulators.get(provider)!.tasks.filter((task) => JSON.stringify(task.body).includes(marker)).length, 0);
  }
}

/** Files under the storage folder (relative), temporary ones apart. */
function storedFiles(directory: string): { keys: string[]; partial: string[] } {
  const all = readdirSync(directory, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(directory.length + 1));
  return { keys: all.filter((file) => !file.startsWith('.partial')).sort(), partial: all.filter((file) => file.startsWith('.partial')).sort() };
}

type Expected =
  | { decided: false }
  | { decided: true; stored: true; body: Buffer; attempts: number }
  | { decided: true; stored: false; error: string | RegExp; gone: boolean; attempts: number };

/** What the README says one output ends as, after the answers the host gave and the faults its writes met. */
function expectedOutcome(world: World, record: TaskModel, key: string): Expected {
  const answers = world.host.log.get(record.path ?? '') ?? [];
  const writes = [...(world.faults.writes.get(key) ?? [])];
  const tries: { reason: string | RegExp; retryable: boolean; gone: boolean; body?: Buffer }[] = [];
  for (const { answer, body } of answers) {
    const fault = WRITES.has(answer.kind) ? writes.shift() : undefined;
    // Stopped by a restart: no try (the copy starts again from the URL).
    if (answer.kind === 'hold') continue;
    // A fault before the body is read (the filesystem's open) fails any write; others only one whose body came whole (an
    // upload to S3 starts once its part is read: a body that fails before then fails the copy first).
    const storageFailed = fault !== undefined && ((fault === 'open' && world.backend.failsBeforeReading) || ['full', 'redirect'].includes(answer.kind));
    const storage = { reason: STORAGE_FAILED, retryable: true, gone: false };
    switch (answer.kind) {
      case 'full':
      case 'redirect':
        tries.push(storageFailed ? storage : { reason: '', retryable: true, gone: false, body: body! });
        break;
      case 'short':
      case 'reset':
        tries.push(storageFailed ? storage : { reason: /^the copy failed: /, retryable: true, gone: false });
        break;
      case 'empty':
        tries.push(storageFailed ? storage : { reason: 'the copy failed: the provider sent an empty file', retryable: true, gone: false });
        break;
      case 'slow':
        tries.push(storageFailed ? storage : { reason: /^the copy failed: timeout of 1000ms exceeded$/, retryable: true, gone: false });
        break;
      case 'status':
        tries.push({ reason: `the provider answered ${answer.status} for the result URL`, retryable: true, gone: answer.status === 404 || answer.status === 410 });
        break;
      case 'huge':
        tries.push({ reason: `the file is larger than storage.max_bytes (${MAX_BYTES} bytes): the provider announced ${HUGE} bytes`, retryable: false, gone: false });
        break;
    }
  }
  // Given up on because the gateway's storage failed: copied again later (no model run reaches the end of that).
  let waiting: Expected | undefined;
  for (const [index, one] of tries.entries()) {
    const attempts = index + 1;
    if (one.body) return { decided: true, stored: true, body: one.body, attempts };
    const later = attempts - MAX_ATTEMPTS;
    const laterTries = later === 0 ? '' : ` and ${later} later ${later === 1 ? 'try' : 'tries'}`;
    const reasonText = (reason: string | RegExp) => (typeof reason === 'string' ? escaped(reason) : reason.source.endsWith('$') ? reason.source.slice(0, -1) : `${reason.source}.*`);
    if (!one.retryable) {
      if (waiting) return { decided: true, stored: false, error: `${one.reason} (gave up after ${MAX_ATTEMPTS} tries${laterTries})`, gone: false, attempts };
      return { decided: true, stored: false, error: one.reason, gone: false, attempts };
    }
    if (waiting) {
      waiting = { decided: true, stored: false, error: new RegExp(`^${reasonText(one.reason)} \\(gave up after ${MAX_ATTEMPTS} tries${laterTries}; copied again later, until [0-9TZ:.-]+\\)$`), gone: false, attempts };
      continue;
    }
    if (attempts === MAX_ATTEMPTS) {
      const gone = tries.slice(0, attempts).every((t) => t.gone);
      const reason = one.reason;
      if (reason === STORAGE_FAILED) {
        waiting = { decided: true, stored: false, error: new RegExp(`^${escaped(reason)} \\(gave up after ${attempts} tries; copied again later, until [0-9TZ:.-]+\\)$`), gone: false, attempts };
        continue;
      }
      const error =
        typeof reason === 'string'
          ? gone
            ? `${reason} on all ${attempts} tries: its copy is gone`
            : `${reason} (gave up after ${attempts} tries)`
          : new RegExp(`${reason.source.endsWith('$') ? reason.source.slice(0, -1) : `${reason.source}.*`} \\(gave up after ${attempts} tries\\)$`);
      return { decided: true, stored: false, error, gone, attempts };
    }
  }
  return waiting ?? { decided: false };
}

const STORAGE_FAILED = "the gateway's storage could not write the copy";

/** `text` as a regular expression matching it exactly. */
function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function fetchContent(world: World, id: string, index: number, headers: Record<string, string> = {}, key = TENANT_KEY) {
  const response = await fetch(`${world.gateway.url}/v1/videos/${id}/content?index=${index}`, { headers: { authorization: `Bearer ${key}`, ...headers }, redirect: 'manual' });
  return { response, bytes: Buffer.from(await response.arrayBuffer()) };
}

async function checkInvariants(world: World, final = false): Promise<void> {
  const context = () => `\n${world.log.join('\n')}`;
  const files = await world.backend.files();
  const allowedKeys = new Set<string>();
  const storedKeys = new Set<string>();
  for (const record of world.tasks) {
    const answer = await world.gateway.get(record.id);
    expect(answer.status, `GET ${record.id}${context()}`).toBe(200);
    const task = answer.body;
    if (record.status === 'succeeded') expect(task.status, `${record.id} left succeeded${context()}`).toBe('succeeded');
    record.status = task.status;
    // Nothing paid twice.
    expect(world.upstreamCount(record.marker), `${record.id} created upstream more than once${context()}`).toBeLessThanOrEqual(1);
    expect(['queued', 'processing', 'succeeded'], `${record.id} ${task.status}: ${JSON.stringify(task.error)}${context()}`).toContain(task.status);
    if (final) expect(task.status, `${record.id} never finished${context()}`).toBe('succeeded');
    const outputs = (task.outputs ?? []) as any[];
    if (task.status !== 'succeeded') {
      if (outputs.length > 0) {
        const early = await fetchContent(world, record.id, 0);
        expect(early.response.status, `${record.id} content while ${task.status}${context()}`).toBe(409);
      }
      for (const [index, output] of outputs.entries()) {
        expect(['pending', 'stored', 'not_stored'], `${record.id} output ${index} while processing${context()}`).toContain(output.storage);
        const key = `acme/${task.created_at.slice(0, 10)}/${record.id}-${index}.mp4`;
        allowedKeys.add(key);
        if (output.storage === 'stored') storedKeys.add(key);
      }
      continue;
    }
    expect(outputs.length, `${record.id} succeeded without outputs${context()}`).toBe(1);
    // Another tenant's content is not found; an index past the outputs is not found.
    expect((await fetchContent(world, record.id, 0, {}, OTHER_TENANT_KEY)).response.status, `other tenant${context()}`).toBe(404);
    expect((await fetchContent(world, record.id, outputs.length)).response.status, `index past the outputs${context()}`).toBe(404);
    for (const [index, output] of outputs.entries()) {
      const key = `acme/${task.created_at.slice(0, 10)}/${record.id}-${index}.mp4`;
      const where = `${record.id} output ${index} (${record.provider}, ${JSON.stringify(output)})`;
      expect(['stored', 'not_stored'], `${where} in a succeeded task${context()}`).toContain(output.storage);
      expect(output.upstream_url, where).toBe(`${world.host.url}${record.path}`);
      const expected = expectedOutcome(world, record, key);
      if (!expected.decided) {
        const seen = JSON.stringify({ answers: world.host.log.get(record.path ?? ''), writes: world.faults.writes.get(key) });
        throw new Error(`${where}: the host's answers decide nothing yet, but the output is ${output.storage} ${seen}${context()}`);
      }
      // No request for the file once its output was decided.
      const tries = (world.host.log.get(record.path!) ?? []).filter((entry) => entry.answer.kind !== 'hold').length;
      expect(tries, `${where}: requests for the file after it was decided${context()}`).toBe(expected.attempts);
      if (expected.stored) {
        storedKeys.add(key);
        expect(output, `${where}: expected stored${context()}`).toMatchObject({ storage: 'stored', storage_error: null, sha256: sha256(expected.body), bytes: expected.body.length });
        const onDisk = await world.backend.read(files.keys.find((file) => firstKeyOf(file) === key) ?? key);
        expect(sha256(onDisk), `${where}: the stored file`).toBe(output.sha256);
        const whole = await fetchContent(world, record.id, index);
        expect(whole.response.status, where).toBe(200);
        expect(whole.bytes.equals(expected.body), `${where}: content served`).toBe(true);
        expect(whole.response.headers.get('etag')).toBe(`"${output.sha256}"`);
        const size = expected.body.length;
        const start = (size * 7 + record.id.length * 131) % size;
        const end = Math.min(size - 1, start + ((size * 13) % 997));
        const part = await fetchContent(world, record.id, index, { range: `bytes=${start}-${end}` });
        expect(part.response.status, where).toBe(206);
        expect(part.response.headers.get('content-range')).toBe(`bytes ${start}-${end}/${size}`);
        expect(part.bytes.equals(expected.body.subarray(start, end + 1)), `${where}: range`).toBe(true);
        const outside = await fetchContent(world, record.id, index, { range: `bytes=${size}-${size + 10}` });
        expect(outside.response.status, where).toBe(416);
        expect(outside.response.headers.get('content-range')).toBe(`bytes */${size}`);
      } else {
        expect(output, `${where}: expected not stored${context()}`).toMatchObject({ storage: 'not_stored', sha256: null, bytes: null, upstream_url_gone: expected.gone, url: output.upstream_url });
        if (typeof expected.error === 'string') expect(output.storage_error, where).toBe(expected.error);
        else expect(output.storage_error, where).toMatch(expected.error);
        const content = await fetchContent(world, record.id, index);
        if (expected.gone) {
          expect(content.response.status, where).toBe(410);
        } else {
          expect(content.response.status, where).toBe(307);
          expect(content.response.headers.get('location')).toBe(output.upstream_url);
        }
      }
    }
  }
  // One file per stored output, nothing else (a pending output's key may hold what a lost write answer or a crash left).
  const firstKeys = files.keys.map(firstKeyOf);
  for (const key of storedKeys) expect(firstKeys, `stored ${key} missing${context()}`).toContain(key);
  for (const key of storedKeys) expect(firstKeys.filter((file) => file === key), `more than one file for the stored output ${key}${context()}`).toHaveLength(1);
  for (const key of firstKeys) {
    const ok = storedKeys.has(key) || (!final && allowedKeys.has(key));
    expect(ok, `a file no stored output points to: ${key}${context()}`).toBe(true);
  }
  for (const partial of files.partial) expect(world.abandoned.has(partial), `temporary file ${partial} left behind${context()}`).toBe(true);
}

abstract class Step implements fc.AsyncCommand<object, World> {
  check(): boolean {
    return true;
  }
  abstract act(world: World): Promise<void>;
  abstract toString(): string;
  async run(_model: object, world: World): Promise<void> {
    world.log.push(this.toString());
    await this.act(world);
    await checkInvariants(world);
  }
}

class Create extends Step {
  constructor(
    readonly provider: ProviderId,
    readonly queue: Answer[],
    readonly tail: Answer,
  ) {
    super();
  }
  async act(world: World): Promise<void> {
    const marker = world.nextMarker();
    const model = this.provider === 'kling-legacy' ? 'kling-v1' : 'kling-v3';
    const created = await world.gateway.create({ model, prompt: `a lighthouse ${marker}`, duration: 5, routing: { providers: [this.provider] } });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    world.tasks.push({ id: created.body.id, marker, provider: this.provider, script: { queue: this.queue.map((a) => ({ ...a })), tail: this.tail }, status: created.body.status });
    await world.settle();
  }
  toString(): string {
    return `create(${this.provider}, [${this.queue.map(show).join(' ')}] then ${show(this.tail)})`;
  }
}

function show(answer: Answer): string {
  switch (answer.kind) {
    case 'status':
      return String(answer.status);
    case 'full':
    case 'short':
    case 'reset':
    case 'redirect':
      return `${answer.kind}#${answer.version}`;
    default:
      return answer.kind;
  }
}

class Advance extends Step {
  constructor(readonly ms: number) {
    super();
  }
  async act(world: World): Promise<void> {
    await world.clock.advance(this.ms);
    await world.settle();
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

class ArmFault extends Step {
  constructor(
    readonly pick: number,
    readonly fault: StorageFault,
    readonly times: number,
  ) {
    super();
  }
  async act(world: World): Promise<void> {
    const record = world.tasks[this.pick % Math.max(1, world.tasks.length)];
    if (!record) return;
    const armed = world.faults.armed.get(record.id) ?? [];
    for (let i = 0; i < this.times; i++) armed.push(this.fault);
    world.faults.armed.set(record.id, armed);
    world.log.push(`  armed on ${record.id}`);
  }
  toString(): string {
    return `storage fault(${this.pick}, ${this.fault} x${this.times})`;
  }
}

/**
 * A restart on the same database and storage folder. Idle: between copies. Mid-copy: a copy is
 * on its way (its file host holding the body) when the process stops, gracefully (SIGTERM) or
 * abruptly (the store as the dead process left it, its temporary file left behind; `renamed`:
 * it died after the file was renamed into place, before it was recorded).
 */
class Restart extends Step {
  constructor(
    readonly mode: 'idle' | 'graceful' | 'abrupt',
    readonly pick: number,
    readonly renamed: boolean,
  ) {
    super();
  }
  async act(world: World): Promise<void> {
    const storing = [];
    for (const record of world.tasks) {
      // A task still generating or waiting for its next try (a storage fault armed for it would end the held copy before the stop).
      if (world.faults.armed.has(record.id)) continue;
      const row = await world.gateway.gateway.store.getTask(record.id);
      if (row?.phase !== 'storing' && row?.phase !== 'tracking') continue;
      if (!record.path && row.provider_task_id) {
        record.path = `/sim-files/${row.provider_task_id}.mp4`;
        world.host.scripts.set(record.path, record.script);
      }
      if (record.path) storing.push(record);
    }
    const record = this.mode === 'idle' ? undefined : storing[this.pick % Math.max(1, storing.length)];
    let snapshot: any;
    let partials = new Map<string, Buffer>();
    if (record) {
      world.host.holdNext(record.path!);
      for (let step = 0; step < 40 && !world.host.heldOpen(record.path!); step++) {
        await world.clock.advance(1_000);
        // Polled by hand (a whole worker pass would wait for the held copy).
        await world.gateway.gateway.tracker.tick();
        void world.gateway.gateway.custody.start();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      if (!world.host.heldOpen(record.path!)) throw new Error(`the copy of ${record.id} never started${world.log.join('\n')}`);
      // Other copies finish first: only the held one is cut by the stop.
      // (The held one's write is on its way too.)
      for (let step = 0; step < 1_000 && (world.host.busy() > 0 || world.faults.inFlight > 1); step++) await new Promise((resolve) => setTimeout(resolve, 10));
      await new Promise((resolve) => setTimeout(resolve, 30));
      snapshot = await world.gateway.gateway.store.getTask(record.id);
      expect(snapshot.lease_owner, `the held copy of ${record.id} ended before the stop${world.log.join('\n')}`).not.toBeNull();
      partials = world.backend.partials?.save() ?? partials;
      world.log.push(`  stopped mid-copy of ${record.id} (lease ${snapshot.lease_owner})`);
    } else {
      await world.gateway.gateway.custody.idle();
    }
    await world.gateway.close();
    if (record && this.mode === 'abrupt') {
      const store = await openStore(world.database);
      await new TaskStore(store).updateTask(record.id, {
        phase: snapshot.phase,
        status: snapshot.status,
        outputs_json: snapshot.outputs_json,
        next_poll_at: snapshot.next_poll_at,
        lease_owner: snapshot.lease_owner,
        lease_until: snapshot.lease_until,
      });
      await store.close();
      world.backend.partials?.restore(partials);
      for (const partial of partials.keys()) world.abandoned.add(partial);
      if (this.renamed) {
        // The dead process had the whole file (as the host would have sent it) renamed into place.
        const created = new Date(Number(snapshot.created_at)).toISOString().slice(0, 10);
        await world.backend.put(`acme/${created}/${record.id}-0.mp4`, bodyOf(record.path!, 1000));
      }
    }
    await world.start();
    await world.settle();
  }
  toString(): string {
    return `restart(${this.mode}, ${this.pick}${this.mode === 'abrupt' && this.renamed ? ', renamed' : ''})`;
  }
}

const version = fc.integer({ min: 1, max: 3 });
const answer: fc.Arbitrary<Answer> = fc.oneof(
  { weight: 4, arbitrary: version.map((v): Answer => ({ kind: 'full', version: v })) },
  { weight: 2, arbitrary: version.map((v): Answer => ({ kind: 'short', version: v })) },
  { weight: 1, arbitrary: version.map((v): Answer => ({ kind: 'reset', version: v })) },
  { weight: 3, arbitrary: fc.constantFrom(403, 404, 410, 500, 503).map((status): Answer => ({ kind: 'status', status })) },
  { weight: 1, arbitrary: version.map((v): Answer => ({ kind: 'redirect', version: v })) },
  { weight: 1, arbitrary: fc.constant<Answer>({ kind: 'empty' }) },
  { weight: 1, arbitrary: fc.constant<Answer>({ kind: 'huge' }) },
  { weight: 1, arbitrary: fc.constant<Answer>({ kind: 'slow' }) },
);
// What a file host answers for good once its script ran out: the file, or it stays gone/refused/down.
const tail: fc.Arbitrary<Answer> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<Answer>({ kind: 'full', version: 9 }) },
  { weight: 2, arbitrary: fc.constantFrom(403, 404, 410, 503).map((status): Answer => ({ kind: 'status', status })) },
);
const provider = fc.constantFrom<ProviderId>(...PROVIDER_IDS);
const pick = fc.nat({ max: 9 });

const steps = fc.commands(
  [
    fc.tuple(provider, fc.array(answer, { maxLength: 4 }), tail).map(([p, q, t]) => new Create(p, q, t)),
    fc.constantFrom(1_000, 5_000, 20_000, 60_000).map((ms) => new Advance(ms)),
    fc.tuple(pick, fc.constantFrom<StorageFault>('open', 'writev', 'fdatasync', 'lost'), fc.integer({ min: 1, max: 3 })).map(([p, f, n]) => new ArmFault(p, f, n)),
    fc.tuple(fc.constantFrom<'idle' | 'graceful' | 'abrupt'>('idle', 'graceful', 'abrupt', 'abrupt'), pick, fc.boolean()).map(([m, p, r]) => new Restart(m, p, r)),
  ],
  { maxCommands: 14, size: 'large' },
);

/** Past every retry horizon: workers run until nothing is left to copy; old temporary files are then old enough to sweep. */
async function drain(world: World): Promise<void> {
  world.log.push('drain');
  for (let step = 0; step < 30; step++) {
    await world.clock.advance(20_000);
    await world.settle();
  }
  // What an abrupt stop left is deleted by the retention pass once untouched for twice the copy
  // time limit (wall-clock file times): they are made that old here instead of waiting.
  world.backend.partials?.age();
  await world.clock.advance(61_000);
  await world.settle();
  world.abandoned.clear();
}

let host: ScriptedHost;
let s3rver: S3rver | undefined;
beforeAll(async () => {
  host = new ScriptedHost();
  await host.start();
});
afterAll(async () => {
  await host?.close();
  await s3rver?.close();
});

/** Runs the model `runs` times on the storage `backendFor` gives each run. */
async function runModel(backendFor: (faults: FaultLog, run: number) => Backend, runs: number, seed: number): Promise<void> {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.tuple(provider, fc.array(answer, { maxLength: 3 }), tail), steps, async (first, commands) => {
      host.scripts.clear();
      host.log.clear();
      const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
      const database = tempDatabaseUrl();
      const simulators = new Map<string, ProviderSimulator>();
      const endpoints = new Map<string, ProviderEndpoint>();
      for (const one of PROVIDERS) {
        const apiKey = `sim-${randomBytes(8).toString('hex')}`;
        const webhookSecret = randomBytes(24).toString('base64url');
        // Results are on the scripted host: the simulators name it as their files' origin.
        const simulator = one.createSimulator({
          clock,
          apiKey,
          webhookSecret,
          timing: { queuedMs: 1_000, processingMs: 4_000 },
          publicUrl: host.url,
          ...(one.resultLifetimeMs !== undefined ? { resultLifetimeMs: one.resultLifetimeMs } : {}),
        });
        const baseUrl = await simulator.listen(0, '127.0.0.1');
        simulators.set(one.id, simulator);
        endpoints.set(one.id, { baseUrl, apiKey, webhookSecret, simulated: true, runTimeMs: 5_000 });
      }
      const faults = new FaultLog();
      const world = new World(clock, host, faults, backendFor(faults, ++run), database, endpoints, simulators);
      try {
        await world.start();
        await new Create(first[0], first[1], first[2]).run({}, world);
        await fc.asyncModelRun(() => ({ model: {}, real: world }), commands);
        await drain(world);
        await checkInvariants(world, true);
        if (process.env.CUSTODY_MODEL_LOG) {
          const ends = [];
          for (const record of world.tasks) {
            const output = (await world.gateway.get(record.id)).body.outputs[0];
            ends.push(`${output.storage}${output.storage_error ? ` (${output.storage_error})` : ''}`);
          }
          console.log(`${world.backend.name}: ${world.log.join(' | ')}\n  => ${ends.join('; ')}`);
        }
      } finally {
        await world.gateway?.close().catch(() => undefined);
        await Promise.all([...simulators.values()].map((simulator) => simulator.close().catch(() => undefined)));
        rmSync(dirname(database.slice('sqlite:'.length)), { recursive: true, force: true });
      }
    }),
    { seed, numRuns: runs },
  );
}

const FS_RUNS = Number(process.env.CUSTODY_MODEL_RUNS ?? 10);
const S3_RUNS = Math.max(1, Math.round(FS_RUNS / 3));

it('on the filesystem: keeps every result it reports stored, byte for byte, and ends every other output as documented, whatever the file host, the disk and restarts do', async () => {
  const directories: string[] = [];
  try {
    await runModel((faults) => {
      const directory = mkdtempSync(join(tmpdir(), 'kling-gw-custody-model-'));
      directories.push(directory);
      // Made first, so that a write's first open of its temporary file is the one a fault is armed for.
      mkdirSync(join(directory, '.partial'));
      return filesystemBackend(directory, faults);
    }, FS_RUNS, SEED);
  } finally {
    for (const directory of directories) rmSync(directory, { recursive: true, force: true });
  }
}, 60_000 + FS_RUNS * 8_000);

it('on S3 (s3rver behind a proxy that answers 503): the same', async () => {
  const BUCKET = 'custody-model';
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: mkdtempSync(join(tmpdir(), 's3rver-model-')) });
  const { port } = (await s3rver.run()) as { port: number };
  const failing = new Set<string>();
  // Writes of an armed key answer 503 SlowDown; everything else goes through to s3rver.
  const proxy = createServer((req, res) => {
    const path = decodeURIComponent(req.url ?? '');
    if ((req.method === 'PUT' || req.method === 'POST') && [...failing].some((key) => path.includes(key))) {
      req.resume();
      req.on('end', () => res.writeHead(503, { 'content-type': 'application/xml' }).end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>'));
      return;
    }
    const forward = httpRequest({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const client = new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true, credentials });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  try {
    await runModel((faults, run) => {
      const prefix = `run-${run}/`;
      return {
        name: 's3',
        failsBeforeReading: false,
        config: {
          backend: 's3',
          s3: { bucket: BUCKET, prefix, endpoint, region: 'us-east-1', force_path_style: true, access_key_id: credentials.accessKeyId, secret_access_key: credentials.secretAccessKey, serve: 'proxy' },
        },
        open: async () =>
          new FaultyS3(
            await S3Storage.open({ bucket: BUCKET, prefix, region: 'us-east-1', endpoint, forcePathStyle: true, ...credentials, partSizeBytes: 5 * 1024 * 1024, queueSize: 1 }),
            faults,
            failing,
          ),
        files: async () => {
          const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
          return { keys: (listed.Contents ?? []).map((object) => object.Key!.slice(prefix.length)).sort(), partial: [] };
        },
        read: async (key) => Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${prefix}${key}` }))).Body!.transformToByteArray()),
        put: async (key, bytes) => {
          await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}${key}`, Body: bytes }));
        },
      };
    }, S3_RUNS, SEED + 4);
  } finally {
    client.destroy();
    proxy.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
  }
}, 60_000 + S3_RUNS * 8_000);
