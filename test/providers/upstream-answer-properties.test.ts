/**
 * Every answer an upstream's document allows is handled: the adapters are fed answers generated
 * from the RESPONSE schemas of `openapi/<provider>.yaml` (not from our simulators): optional
 * fields absent, extra fields present, `null` where nullable, every enum value, numbers and
 * strings at their edges, arrays empty or long, error bodies of each documented form. What a
 * user relies on must hold for each:
 *
 * - nothing throws but `UpstreamError` (an answer the adapter cannot use, or an error the answer
 *   reports) — never a `TypeError` or a parser's exception;
 * - a create answer that names a task is accepted with that task id;
 * - `succeeded` only for a documented success word, never for an unknown or a failure word, and
 *   a success answer that carries a result URL keeps it (a success with no URL at all is the
 *   core's to refuse: `test/gateway/unusable-answers.test.ts`);
 * - a documented failure is `failed` with a canonical error; an unknown word stays in progress;
 * - the raw word is kept; outputs are the answer's own URLs; a duration or a charge is the
 *   decimal figure the answer states, or none;
 * - an error answer maps to a canonical error code with a message, and an outage (5xx) or an
 *   auth, credit or rate-limit answer is never read as a refusal of the content by its wording
 *   (a refusal is never failed over).
 *
 * Where the documents leave a field open but name its meaningful values in prose (kling3api's
 * status words, the legacy error codes), those values are mixed in; unknown status words are
 * tried beside the documented enums; messages are now and then worded as a content refusal.
 *
 * Seeds are fixed and runs bounded, so the test is deterministic and takes a few seconds.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/core/model/canonical.js';
import type {
  LookupContext,
  StatusReport,
  UpstreamClient,
  UpstreamRequest,
  UpstreamResponse,
  VideoProvider,
} from '../../src/core/upstream/provider.js';
import { UpstreamError } from '../../src/core/upstream/upstream-error.js';
import { freepikProvider } from '../../src/providers/freepik/freepik-provider.js';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { toFreepikRequest } from '../../src/providers/freepik/freepik-request.js';
import { klingLegacyProvider } from '../../src/providers/kling-legacy/kling-legacy-provider.js';
import { toKlingLegacyRequest } from '../../src/providers/kling-legacy/kling-legacy-request.js';
import { kling3apiProvider } from '../../src/providers/kling3api/kling3api-provider.js';
import { resolvedBaseRequest } from '../support/capability-requests.js';
import { contractOf } from '../support/openapi-contract.js';
import { answerArbitrary, schemaArbitrary } from '../support/schema-arbitrary.js';

type Json = Record<string, unknown>;

const RUNS = 60;
const params = (seed: number) => ({ seed, numRuns: RUNS });

function documentOf(id: string): Json {
  return parse(readFileSync(new URL(`../../openapi/${id}.yaml`, import.meta.url), 'utf8')) as Json;
}

/** The wire: what a client hands the adapter is the JSON as parsed. */
const wire = (body: unknown): unknown => JSON.parse(JSON.stringify(body)) as unknown;

/** An upstream that answers every call with the next of `answers` (the last one again once they run out). */
function answering(answers: readonly unknown[], apiShape?: string): UpstreamClient & { requests: UpstreamRequest[] } {
  const requests: UpstreamRequest[] = [];
  return {
    requests,
    ...(apiShape ? { apiShape } : {}),
    async send(request: UpstreamRequest): Promise<UpstreamResponse> {
      const data = answers[Math.min(requests.length, answers.length - 1)];
      requests.push(request);
      return { status: 200, headers: {}, data: wire(data) };
    },
  };
}

/** Runs `call`; anything it throws must be the adapter's own `UpstreamError`. */
async function settle<T>(call: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: UpstreamError }> {
  try {
    return { ok: true, value: await call() };
  } catch (error) {
    if (!(error instanceof UpstreamError)) throw error;
    return { ok: false, error };
  }
}

/** How a provider's document says its status words read. */
interface Words {
  /** The canonical status of a documented word; undefined for any other. */
  of(word: unknown): StatusReport['status'] | undefined;
}

/** A figure the answer states as a number or as decimal text: seconds, credits. Anything else states none. */
function statedFigure(raw: unknown): number | undefined {
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\+?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?$/i.test(raw.trim()) ? Number(raw) : NaN;
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

function checkReport(report: StatusReport, word: unknown, words: Words, urls: readonly string[]) {
  expect(['queued', 'processing', 'succeeded', 'failed', 'unknown']).toContain(report.status);
  // The raw word is kept as the task's `provider_status`.
  if (typeof word === 'string') expect(report.providerStatus).toBe(word);
  for (const output of report.outputs) {
    expect(typeof output.url).toBe('string');
    expect(output.url.length).toBeGreaterThan(0);
    // Only what the answer gave as a result.
    expect(urls).toContain(output.url);
    if (output.duration !== null) expect(output.duration).toBeGreaterThanOrEqual(0);
  }
  if (report.reportedCredits !== undefined) {
    expect(Number.isFinite(report.reportedCredits)).toBe(true);
    expect(report.reportedCredits).toBeGreaterThanOrEqual(0);
  }
  const documented = words.of(word);
  if (report.status === 'succeeded') expect(documented).toBe('succeeded');
  if (documented === 'failed') {
    expect(report.status).toBe('failed');
    expect(ERROR_CODES).toContain(report.error?.code);
    expect(report.error?.message).toBeTruthy();
  }
  if (documented === 'succeeded') {
    expect(report.status).toBe('succeeded');
    if (urls.some((url) => url.trim() !== '')) expect(report.outputs.length).toBeGreaterThan(0);
  }
  if (documented === undefined && report.status !== 'processing' && report.status !== 'queued') {
    expect(report.status).toBe('unknown');
  }
}

/**
 * An error answer maps to a canonical code with a message. An outage (5xx) or an auth, credit or
 * rate-limit answer is never a refusal of the content (which is never failed over) by its
 * wording: only a code the body gives may say so (`requestCode`).
 */
function checkMappedError(provider: VideoProvider, status: number, body: unknown, requestCode = false) {
  const mapped = provider.mapHttpError(status, body);
  expect(ERROR_CODES).toContain(mapped.code);
  expect(typeof mapped.message).toBe('string');
  expect(mapped.message.length).toBeGreaterThan(0);
  if ((status >= 500 || [401, 402, 429].includes(status)) && !requestCode) expect(mapped.code).not.toBe('content_policy');
}

/** Now and then, the body's `message` in the words of a refusal of the content (still a string, as documented). */
const worded = (arb: fc.Arbitrary<unknown>) =>
  fc
    .tuple(arb, fc.option(fc.constantFrom('Content moderation service unavailable', 'safety check timed out', 'prompt violates the content policy'), { freq: 3 }))
    .map(([body, message]) => (message === null || !body || typeof body !== 'object' ? body : { ...(body as Json), message }));

/** An unknown word: any text, and near-misses of real words. */
const strangeWord = (near: readonly string[]) =>
  fc.oneof(
    fc.string({ maxLength: 20 }),
    fc.constantFrom(...near.flatMap((word) => [`${word}_WITH_ERRORS`, `NOT_${word}`, `${word}?`, word.slice(1)])),
  );

const lookupContext = (http: UpstreamClient, known: (id: string) => boolean, recorded = 0): LookupContext => ({
  http,
  knownTaskIds: async (ids) => new Set(ids.filter(known)),
  recordedTaskCount: async () => recorded,
});

// ---------------------------------------------------------------------------------------------

describe('freepik: every documented answer', () => {
  const document = documentOf('freepik');
  const contract = contractOf('freepik');
  // Exact words of `task.status`'s enum: `COMPLETED_WITH_ERRORS` or `completed` is no word of it.
  const KNOWN: Record<string, StatusReport['status']> = { CREATED: 'queued', IN_PROGRESS: 'processing', COMPLETED: 'succeeded', FAILED: 'failed' };
  const WORDS: Words = { of: (word) => (typeof word === 'string' && Object.hasOwn(KNOWN, word) ? KNOWN[word] : undefined) };
  /** Every create route, with an offering and quality that goes there. */
  const creates = freepikProvider.offerings.flatMap((offering) =>
    offering.qualities.map((quality) => {
      const request = resolvedBaseRequest(offering, quality);
      const { path, statusFamily } = toFreepikRequest(request, offering);
      return { path, family: statusFamily, offering, request };
    }),
  );
  const generatedOf = (task: Json | undefined): string[] =>
    Array.isArray(task?.generated) ? (task.generated as unknown[]).filter((url): url is string => typeof url === 'string') : [];

  it.each(creates.map((create) => [create.path, create] as const))('a create answer of POST %s', async (path, { offering, request }) => {
    await fc.assert(
      fc.asyncProperty(answerArbitrary(document, contract, { method: 'POST', path }, 200), async (body) => {
        const answer = body as { data: Json };
        const result = await settle(() => freepikProvider.submit(request, offering, { http: answering([body]), taskId: 't', attemptKey: 't-1' }));
        const id = answer.data.task_id as string;
        // Documented as a uuid, so never empty: the task is accepted with its id.
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        expect(result.value.ref.providerTaskId).toBe(id);
        checkReport(result.value, answer.data.status, WORDS, generatedOf(answer.data));
      }),
      params(1),
    );
  });

  const families = [...new Set(creates.map((create) => create.family))];

  it.each(families)('a status answer of GET %s/{task-id}, with documented and unknown words', async (family) => {
    const path = `${family}/0b5e1b7c-1f0e-4c1e-9b7a-2b4c4a3f2e11`;
    const documented = answerArbitrary(document, contract, { method: 'GET', path, template: `${family}/{task-id}` }, 200);
    const unknown = fc.tuple(documented, strangeWord(['CREATED', 'IN_PROGRESS', 'COMPLETED', 'FAILED'])).map(([body, word]) => {
      const copy = structuredClone(body) as { data: Json };
      copy.data.status = word;
      return copy;
    });
    await fc.assert(
      fc.asyncProperty(fc.oneof(documented, unknown), async (body) => {
        const answer = body as { data: Json };
        const result = await settle(() =>
          freepikProvider.getStatus({ providerTaskId: 'x', tracking: { family } }, { http: answering([body]) }),
        );
        if (!result.ok) return;
        checkReport(result.value, answer.data.status, WORDS, generatedOf(answer.data));
      }),
      params(2),
    );
  });

  it('a signed webhook carrying a documented task, bare or in its envelope', async () => {
    const task = schemaArbitrary(document, { $ref: '#/components/schemas/task-detail' });
    const envelope = answerArbitrary(document, contract, { method: 'GET', path: '/v1/ai/video/kling-v3/x', template: '/v1/ai/video/kling-v3/{task-id}' }, 200);
    // A word the enum does not have, in a webhook as well.
    const unknown = fc.tuple(task, strangeWord(Object.keys(KNOWN))).map(([body, word]) => ({ ...(body as Json), status: word }));
    const secret = 'property-webhook-secret';
    await fc.assert(
      fc.asyncProperty(fc.oneof(task, envelope, unknown), fc.integer({ min: 1_700_000_000, max: 1_900_000_000 }), async (body, seconds) => {
        const raw = Buffer.from(JSON.stringify(body), 'utf8');
        const headers = {
          'webhook-id': 'msg_1',
          'webhook-timestamp': String(seconds),
          'webhook-signature': signFreepikWebhook(secret, 'msg_1', String(seconds), raw),
        };
        const verdict = freepikProvider.verifyWebhook!({ headers, rawBody: raw }, secret, seconds * 1000);
        expect(verdict.ok).toBe(true);
        if (!verdict.ok) return;
        const taskBody = ((body as Json).data ?? body) as Json;
        expect(verdict.providerTaskId).toBe(taskBody.task_id);
        // No status word, no report: the task is polled instead.
        if (taskBody.status === '') {
          expect(verdict.report).toBeUndefined();
          return;
        }
        expect(verdict.report).toBeDefined();
        checkReport(verdict.report!, taskBody.status, WORDS, generatedOf(taskBody));
      }),
      params(3),
    );
  });

  it.each(families)('a list answer of GET %s (lookup of an unanswered create)', async (family) => {
    const { offering, request } = creates.find((create) => create.family === family)!;
    const list = answerArbitrary(document, contract, { method: 'GET', path: family }, 200);
    await fc.assert(
      fc.asyncProperty(list, fc.boolean(), async (body, knowAll) => {
        const ids = ((body as { data: Json[] }).data ?? []).map((task) => task.task_id as string);
        const http = answering([body, { data: [] }]);
        const result = await settle(() =>
          freepikProvider.findCreate!({ request, offering, attemptKey: 't-1' }, lookupContext(http, () => knowAll)),
        );
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        expect(['found', 'absent', 'unknown']).toContain(result.value.kind);
        // Absent only when every listed task is one the gateway knows.
        if (result.value.kind === 'absent') expect(knowAll || ids.length === 0).toBe(true);
        if (!knowAll && ids.length > 0) expect(result.value.kind).toBe('unknown');
      }),
      params(4),
    );
  });

  it.each([400, 401, 402, 429, 500, 503])('an error answer %i of a create, in each documented form', async (status) => {
    const path = '/v1/ai/video/kling-v3-omni-pro';
    await fc.assert(
      fc.property(worded(answerArbitrary(document, contract, { method: 'POST', path }, status)), (body) => checkMappedError(freepikProvider, status, wire(body))),
      params(5),
    );
  });

  it('an error answer 404 of a status read', async () => {
    const request = { method: 'GET' as const, path: '/v1/ai/video/kling-v3/x', template: '/v1/ai/video/kling-v3/{task-id}' };
    await fc.assert(fc.property(worded(answerArbitrary(document, contract, request, 404)), (body) => checkMappedError(freepikProvider, 404, wire(body))), params(6));
  });
});

// ---------------------------------------------------------------------------------------------

describe('kling3api: every documented answer', () => {
  const document = documentOf('kling3api');
  const contract = contractOf('kling3api');
  const KNOWN: Record<string, StatusReport['status']> = {
    IN_PROGRESS: 'processing',
    SUCCESS: 'succeeded',
    COMPLETED: 'succeeded',
    FAILED: 'failed',
    EXPIRED: 'failed',
  };
  // SPEC §2 and the document's `TaskStatus` prose: matched whatever the case and surrounding spaces.
  const WORDS: Words = { of: (word) => (typeof word === 'string' && Object.hasOwn(KNOWN, word.trim().toUpperCase()) ? KNOWN[word.trim().toUpperCase()] : undefined) };
  // `TaskStatus` is any string; its known words are in prose, so they are mixed in at their case variants.
  const taskStatus = fc.oneof(
    fc.constantFrom(...Object.keys(KNOWN)),
    fc.constantFrom(...Object.keys(KNOWN)).map((word) => ` ${word.toLowerCase()} `),
    strangeWord(Object.keys(KNOWN)),
  );
  // `code` is any integer; 200 is success, and the error table's statuses are the likely others.
  const overrides = { TaskStatus: taskStatus };
  const withCode = (arb: fc.Arbitrary<unknown>) =>
    fc.tuple(arb, fc.oneof({ weight: 3, arbitrary: fc.constant(200) }, { weight: 1, arbitrary: fc.constantFrom(0, 400, 401, 402, 429, 500) }, { weight: 1, arbitrary: fc.integer() })).map(
      ([body, code]) => ({ ...(body as Json), code }),
    );
  const offering = kling3apiProvider.offerings[0]!;
  /** Whether an error body gives a code of the table's request class (`INVALID_PROMPT`, `MISSING_IMAGE`, ...). */
  const requestCodeIn = (body: unknown) =>
    ['code', 'error', 'error_code'].some((field) => {
      const value = (body as Json)[field];
      return typeof value === 'string' && /^(INVALID_(PROMPT|DURATION|TYPE)|MISSING_(IMAGE|VIDEO))$/.test(value.trim().toUpperCase());
    });

  it('a create answer of POST /api/generate', async () => {
    const request = resolvedBaseRequest(offering);
    const answers = worded(withCode(answerArbitrary(document, contract, { method: 'POST', path: '/api/generate' }, 200, { overrides })));
    await fc.assert(
      fc.asyncProperty(answers, async (body) => {
        const answer = body as { code: number; data?: Json };
        const result = await settle(() => kling3apiProvider.submit(request, offering, { http: answering([body]), taskId: 't', attemptKey: 't-1' }));
        const id = answer.data?.task_id;
        if (answer.code === 200 && typeof id === 'string' && id !== '') {
          expect(result.ok).toBe(true);
          if (result.ok) expect(result.value.ref.providerTaskId).toBe(id);
        }
        // An error code is an error, whatever the task it comes with; an outage code is no refusal of the content.
        if (answer.code >= 400 && answer.code <= 599) expect(result.ok).toBe(false);
        if (answer.code >= 500 && answer.code <= 599 && !result.ok) expect(result.error.code).not.toBe('content_policy');
        // Without a task id there is nothing to track: an unreadable answer, which may have created one.
        if (answer.code === 200 && !(typeof id === 'string' && id !== '')) {
          expect(result.ok).toBe(false);
          if (!result.ok) expect(result.error.mayHaveCreated).toBe(true);
        }
        if (!result.ok) return;
        checkReport(result.value, answer.data?.status, WORDS, []);
        expect(result.value.reportedCredits).toBe(statedFigure(answer.data?.consumed_credits));
      }),
      params(11),
    );
  });

  it('a status answer of GET /api/status', async () => {
    const answers = worded(withCode(answerArbitrary(document, contract, { method: 'GET', path: '/api/status' }, 200, { overrides })));
    await fc.assert(
      fc.asyncProperty(answers, async (body) => {
        const answer = body as { code: number; data?: Json };
        const result = await settle(() => kling3apiProvider.getStatus({ providerTaskId: 'n75x', tracking: { type: 'pro-text-to-video' } }, { http: answering([body]) }));
        if (answer.code >= 400 && answer.code <= 599) expect(result.ok).toBe(false);
        if (answer.code >= 500 && answer.code <= 599 && !result.ok) expect(result.error.code).not.toBe('content_policy');
        if (answer.code === 200 && answer.data) expect(result.ok).toBe(true);
        if (!result.ok) return;
        const urls = Array.isArray(answer.data?.response) ? (answer.data.response as string[]) : [];
        checkReport(result.value, answer.data?.status, WORDS, urls);
        expect(result.value.reportedCredits).toBe(statedFigure(answer.data?.consumed_credits));
      }),
      params(12),
    );
  });

  it.each([
    ['POST', '/api/generate', 400],
    ['POST', '/api/generate', 401],
    ['POST', '/api/generate', 402],
    ['POST', '/api/generate', 429],
    ['POST', '/api/generate', 500],
    ['GET', '/api/status', 404],
  ] as const)('an error answer of %s %s %i', async (method, path, status) => {
    await fc.assert(
      fc.property(worded(answerArbitrary(document, contract, { method, path }, status)), (body) =>
        checkMappedError(kling3apiProvider, status, wire(body), requestCodeIn(body)),
      ),
      params(13),
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('kling-legacy: every documented answer', () => {
  const document = documentOf('kling-legacy');
  const contract = contractOf('kling-legacy');
  const KNOWN: Record<string, StatusReport['status']> = { submitted: 'queued', processing: 'processing', succeed: 'succeeded', failed: 'failed' };
  const WORDS: Words = { of: (word) => (typeof word === 'string' && Object.hasOwn(KNOWN, word.trim().toLowerCase()) ? KNOWN[word.trim().toLowerCase()] : undefined) };
  // `ErrorCode` is any integer: 0 (success) most often, the official table's codes, and any other.
  const TABLE = [1000, 1001, 1002, 1003, 1004, 1100, 1101, 1102, 1103, 1200, 1201, 1202, 1203, 1300, 1301, 1302, 1303, 1304, 5000, 5001, 5002];
  const overrides = {
    ErrorCode: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.constantFrom(...TABLE) }, { weight: 1, arbitrary: fc.integer() }),
  };
  const official = (code: number) => (code >= 1000 && code < 1400) || (code >= 5000 && code < 6000);
  const urlsOf = (task: Json | undefined): string[] => {
    const result = task?.task_result as { videos?: { url?: unknown }[]; images?: { url?: unknown }[] } | undefined;
    return [...(result?.videos ?? []), ...(result?.images ?? [])].map((item) => item.url).filter((url): url is string => typeof url === 'string');
  };
  /** Each video's `duration` ("Seconds, as a string") is its output's, read as a decimal figure or not at all. */
  const checkLegacyTask = (report: StatusReport, task: Json | undefined) => {
    const videos = ((task?.task_result as { videos?: Json[] } | undefined)?.videos ?? []).filter((video) => typeof video.url === 'string' && video.url !== '');
    expect(report.outputs.filter((output) => output.type === 'video').map((output) => output.duration)).toEqual(
      videos.map((video) => statedFigure(video.duration) ?? null),
    );
    expect(report.reportedCredits).toBe(statedFigure(task?.final_unit_deduction));
  };

  /** One offering per create route. */
  const creates = [
    ...new Map(
      klingLegacyProvider.offerings.map((offering) => {
        const request = resolvedBaseRequest(offering);
        const call = toKlingLegacyRequest(request, offering, { externalTaskId: 't-1' });
        return [call.path, { offering, request, call }] as const;
      }),
    ).values(),
  ];

  it.each(creates.map((create) => [create.call.path, create] as const))('a create answer of POST %s', async (path, { offering, request }) => {
    await fc.assert(
      fc.asyncProperty(worded(answerArbitrary(document, contract, { method: 'POST', path }, 200, { overrides })), async (body) => {
        const answer = body as { code: number; data?: Json };
        const result = await settle(() => klingLegacyProvider.submit(request, offering, { http: answering([body]), taskId: 't', attemptKey: 't-1' }));
        const id = answer.data?.task_id;
        if (answer.code === 0 && typeof id === 'string' && id.trim() !== '') {
          expect(result.ok).toBe(true);
          if (result.ok) expect(result.value.ref.providerTaskId).toBe(id);
        }
        if (official(answer.code)) expect(result.ok).toBe(false);
        // A server code (5000-5999) is an outage, whatever its message says.
        if (answer.code >= 5000 && answer.code < 6000 && !result.ok) expect(result.error.code).toBe('provider_error');
        if (answer.data === undefined || (typeof id === 'string' && id.trim() === '')) expect(result.ok).toBe(false);
        if (!result.ok) return;
        checkReport(result.value, answer.data?.task_status, WORDS, urlsOf(answer.data));
        checkLegacyTask(result.value, answer.data);
      }),
      params(21),
    );
  });

  it('a status answer of GET /kling/v1/{action}/{action2}/{task_id}, with documented and unknown words', async () => {
    const template = '/kling/v1/{action}/{action2}/{task_id}';
    const documented = answerArbitrary(document, contract, { method: 'GET', path: '/kling/v1/videos/text2video/abc', template }, 200, { overrides });
    const unknown = fc.tuple(documented, strangeWord(Object.keys(KNOWN))).map(([body, word]) => {
      const copy = structuredClone(body) as { data?: Json };
      if (copy.data) copy.data.task_status = word;
      return copy;
    });
    await fc.assert(
      fc.asyncProperty(fc.oneof(documented, unknown), async (body) => {
        const answer = body as { code: number; data?: Json };
        const result = await settle(() =>
          klingLegacyProvider.getStatus({ providerTaskId: 'abc', tracking: { family: 'videos', action: 'text2video' } }, { http: answering([body]) }),
        );
        if (official(answer.code)) expect(result.ok).toBe(false);
        if (answer.code === 0 && answer.data) expect(result.ok).toBe(true);
        if (!result.ok) return;
        checkReport(result.value, answer.data?.task_status, WORDS, urlsOf(answer.data));
        checkLegacyTask(result.value, answer.data);
      }),
      params(22),
    );
  });

  it('a callback carrying a documented task', async () => {
    const task = schemaArbitrary(document, { $ref: '#/components/schemas/Task' });
    await fc.assert(
      fc.property(task, (body) => {
        const callback = wire(body) as Json;
        const id = klingLegacyProvider.readCallbackTaskId!(callback);
        expect(id).toBe(callback.task_id === '' ? undefined : callback.task_id);
        const claims = klingLegacyProvider.callbackClaimsFinished!(callback);
        const word = WORDS.of(callback.task_status);
        if (word === 'succeeded' || word === 'failed' || word === undefined) expect(claims).toBe(true);
        else expect(claims).toBe(false);
      }),
      params(23),
    );
  });

  it.each([undefined, 'official'])('a lookup answer (by external_task_id, api shape %s)', async (apiShape) => {
    const { offering, request } = creates.find((create) => create.call.action === 'text2video')!;
    const template = '/kling/v1/{action}/{action2}/{task_id}';
    const answers = answerArbitrary(document, contract, { method: 'GET', path: '/kling/v1/videos/text2video/t-1', template }, 200, { overrides });
    await fc.assert(
      fc.asyncProperty(answers, async (body) => {
        const answer = body as { code: number; data?: Json };
        const http = answering([body], apiShape);
        const result = await settle(() =>
          klingLegacyProvider.findCreate!({ request, offering, attemptKey: 't-1' }, lookupContext(http, () => false)),
        );
        if (!result.ok) return;
        expect(['found', 'absent', 'unknown']).toContain(result.value.kind);
        if (result.value.kind === 'found') {
          expect(result.value.ref.providerTaskId).toBe(answer.data?.task_id);
          const echoed = (answer.data?.task_info as Json | undefined)?.external_task_id;
          if (typeof echoed === 'string' && echoed !== '') expect(echoed).toBe('t-1');
        }
        if (result.value.kind === 'absent') expect(apiShape).toBe('official');
      }),
      params(24),
    );
  });

  it.each([400, 401, 403, 404, 429, 500, 503, 504])('an error answer %i (the documented default)', async (status) => {
    await fc.assert(
      fc.property(worded(answerArbitrary(document, contract, { method: 'POST', path: '/kling/v1/videos/text2video' }, status, { overrides })), (body) => {
        // 1200-1203 (invalid request) and 1300/1301 (policy): codes that may say the content was refused.
        const code = (body as Json).code as number;
        checkMappedError(klingLegacyProvider, status, wire(body), code >= 1200 && code < 1302);
      }),
      params(25),
    );
  });
});
