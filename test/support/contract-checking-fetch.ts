/**
 * A fetch for the typed client that holds every exchange with the gateway to
 * `openapi/gateway.json` (with Ajv, independently of the generated types): the path, query and
 * body of each request, and the status and JSON body of each answer. It also records which
 * headers went where, so a test can prove the key never left the gateway's origin.
 */
import { loadOpenApiContract } from './openapi-contract.js';

export interface RecordedCall {
  method: string;
  url: string;
  status: number | null;
  authorization: string | null;
}

export interface ContractCheckingFetch {
  fetch: typeof globalThis.fetch;
  /** Every way an exchange differed from the document. */
  problems: string[];
  calls: RecordedCall[];
}

let contract: ReturnType<typeof loadOpenApiContract> | undefined;

/** Query values as the document types them: digits are numbers (`limit`, `wait`). */
function typedQuery(url: URL): Record<string, string> {
  const query: Record<string, unknown> = {};
  for (const [name, value] of url.searchParams) query[name] = /^\d+$/.test(value) ? Number(value) : value;
  return query as Record<string, string>;
}

/** Paths of the optional endpoints a gateway may lack: a 404 for them is "not here", not drift. */
const OPTIONAL_PATHS = [/^\/v1\/videos\/[^/]+\/cancel$/, /^\/v1\/videos\/[^/]+\/content$/, /^\/v1\/usage$/];

export function contractCheckingFetch(gatewayUrl: string, inner: typeof globalThis.fetch = globalThis.fetch): ContractCheckingFetch {
  contract ??= loadOpenApiContract('gateway.json');
  const document = contract;
  const gateway = new URL(gatewayUrl);
  const problems: string[] = [];
  const calls: RecordedCall[] = [];

  const checked: typeof globalThis.fetch = async (input, init) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const call: RecordedCall = { method: request.method, url: url.href, status: null, authorization: request.headers.get('authorization') };
    calls.push(call);
    const ours = url.origin === gateway.origin && url.pathname.startsWith('/v1/');
    const optional = OPTIONAL_PATHS.some((pattern) => pattern.test(url.pathname));
    let body: unknown;
    if (ours && request.body) {
      const text = await request.clone().text();
      body = text ? JSON.parse(text) : undefined;
    }
    if (ours && !optional) {
      const method = request.method as 'GET' | 'POST';
      for (const problem of document.requestProblems({ method, path: url.pathname, query: typedQuery(url), body })) {
        problems.push(`${method} ${url.pathname}: ${problem}`);
      }
    }
    const response = await inner(request);
    call.status = response.status;
    const type = response.headers.get('content-type') ?? '';
    if (ours && !optional && /\bjson\b/.test(type)) {
      const answer = (await response.clone().json()) as unknown;
      for (const problem of document.responseProblems({ method: request.method as 'GET' | 'POST', path: url.pathname }, response.status, answer)) {
        problems.push(`${request.method} ${url.pathname} → ${response.status}: ${problem}`);
      }
    }
    return response;
  };
  return { fetch: checked, problems, calls };
}
