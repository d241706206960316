/**
 * An upstream's documented contract (`openapi/<provider>.yaml`) compiled by Ajv, for checking
 * the requests the adapters send and the answers the simulators give, independently of the
 * project's own types and zod mirrors.
 *
 * Requests are checked strictly: every object schema that lists its properties is closed
 * (`additionalProperties: false`), so a field the document does not name is caught. Answers are
 * checked as documented (open objects), since an upstream may add fields.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';
import type { UpstreamRequest } from '../../src/core/upstream/provider.js';

// ajv-formats is CommonJS with a default export; under NodeNext the callable is on `.default`.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

type Json = Record<string, unknown>;

/**
 * Keywords whose schemas test a part of a value rather than state its shape (`if: {properties:
 * {type: …}}` holds of an object with more properties too): never closed.
 */
const CONDITIONS = new Set(['if', 'then', 'else', 'not', 'contains']);

/** Adds `additionalProperties: false` to every object schema that lists its properties. */
function closeObjects(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(closeObjects);
  if (!node || typeof node !== 'object') return node;
  const copy: Json = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, CONDITIONS.has(key) ? value : closeObjects(value)]));
  if (copy.properties && typeof copy.properties === 'object' && copy.additionalProperties === undefined) {
    copy.additionalProperties = false;
  }
  return copy;
}

/** Points `#/components/...` references at one of the registered component sets. */
function rebase(node: unknown, id: string): unknown {
  if (Array.isArray(node)) return node.map((item) => rebase(item, id));
  if (!node || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node).map(([key, value]) => [
      key,
      key === '$ref' && typeof value === 'string' && value.startsWith('#/') ? `${id}${value}` : rebase(value, id),
    ]),
  );
}

/** Ajv's errors, one line each, naming the property an object does not allow. */
function errorLines(errors: ValidateFunction['errors']): string[] {
  return (errors ?? []).map((error) => {
    const extra = (error.params as { additionalProperty?: string }).additionalProperty;
    return `${error.instancePath || '/'} ${error.message}${extra ? `: ${extra}` : ''}`;
  });
}

/** Ajv's errors as one line. */
function describeErrors(errors: ValidateFunction['errors']): string {
  return errorLines(errors).join('; ');
}

/**
 * One JSON Schema (draft-07, as the providers' OpenAPI 3.0 documents write theirs) checked as
 * requests are: every object that lists its properties closed. The problems with a value, empty
 * when the schema allows it.
 */
export function closedSchema(schema: Json): (value: unknown) => string[] {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  const validate = ajv.compile(closeObjects(schema) as Json);
  return (value) => (validate(value) ? [] : errorLines(validate.errors));
}

interface CompiledOperation {
  pathPattern: RegExp;
  pathParams: { name: string; validate: ValidateFunction }[];
  /** `numeric`: the schema is a number or an integer, so the wire's text is read as a number first. */
  queryParams: { name: string; required: boolean; numeric: boolean; validate: ValidateFunction }[];
  body?: ValidateFunction;
  /** `requestBody.required`: without it (OpenAPI's default), a request may send no body. */
  bodyRequired?: boolean;
  /** By HTTP status (or `default`): the answer's JSON schema, `null` when it documents no body. */
  responses: Map<string, ValidateFunction | null>;
  /** By HTTP status (or `default`): the headers the answer declares (lower case), each with whether it is required. */
  headers: Map<string, Map<string, boolean>>;
}

export interface OpenApiContract {
  /** Problems with one request, empty when the document allows it. */
  requestProblems(request: Pick<UpstreamRequest, 'method' | 'path' | 'query' | 'body'>): string[];
  /** Problems with an answer to that request, empty when the document describes it. */
  responseProblems(request: Pick<UpstreamRequest, 'method' | 'path'>, status: number, body: unknown): string[];
  /** The headers an answer of that status declares (lower case → required), or undefined when the status is not documented. */
  responseHeaders(request: Pick<UpstreamRequest, 'method' | 'path'>, status: number): Map<string, boolean> | undefined;
}

let schemaIds = 0;

/** `openapi/<provider id>.yaml`. */
export function contractOf(providerId: string): OpenApiContract {
  return loadOpenApiContract(`${providerId}.yaml`);
}

export function loadOpenApiContract(file: string): OpenApiContract {
  return openApiContract(parse(readFileSync(new URL(`../../openapi/${file}`, import.meta.url), 'utf8')) as Json, file);
}

/** The contract of a document already read (`file` names it in the problems). */
export function openApiContract(document: Json, file: string): OpenApiContract {
  const components = (document.components as Json | undefined) ?? {};
  // An OpenAPI 3.1 document's schemas are JSON Schema 2020-12 (`dependentRequired`, for one); 3.0's are draft-07-like.
  const ajv = String(document.openapi).startsWith('3.1') ? new Ajv2020({ strict: false, allErrors: true }) : new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  // OpenAPI 3.0 `format: float` / `int32` are informational here.
  for (const format of ['float', 'double', 'int32', 'int64']) ajv.addFormat(format, true);
  ajv.addSchema({ $id: 'closed', components: { schemas: closeObjects(components.schemas ?? {}) } });
  ajv.addSchema({ $id: 'open', components: { schemas: components.schemas ?? {} } });
  const compileClosed = (schema: unknown) =>
    ajv.compile({ $id: `request-${(schemaIds += 1)}`, ...(closeObjects(rebase(schema, 'closed')) as Json) });
  const compileOpen = (schema: unknown) => ajv.compile({ $id: `response-${(schemaIds += 1)}`, ...(rebase(schema, 'open') as Json) });
  const resolveResponse = (response: Json): Json => {
    const ref = response.$ref;
    if (typeof ref !== 'string') return response;
    const name = ref.replace('#/components/responses/', '');
    return ((components.responses as Json | undefined)?.[name] as Json | undefined) ?? {};
  };

  const operations: { method: string; op: CompiledOperation }[] = [];
  for (const [path, item] of Object.entries(document.paths as Record<string, Json>)) {
    for (const method of ['get', 'post'] as const) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const parameters = [...((item.parameters as Json[] | undefined) ?? []), ...((op.parameters as Json[] | undefined) ?? [])];
      const body = ((op.requestBody as Json | undefined)?.content as Json | undefined)?.['application/json'] as Json | undefined;
      const responses = new Map<string, ValidateFunction | null>();
      const headers = new Map<string, Map<string, boolean>>();
      for (const [status, response] of Object.entries((op.responses as Json | undefined) ?? {})) {
        const declared = (resolveResponse(response as Json).headers as Record<string, Json> | undefined) ?? {};
        headers.set(status, new Map(Object.entries(declared).map(([name, header]) => [name.toLowerCase(), header.required === true])));
        // A problem (`application/problem+json`) is held to its schema as a JSON answer is.
        const media = (resolveResponse(response as Json).content as Json | undefined) ?? {};
        const content = (media['application/json'] ?? media['application/problem+json']) as Json | undefined;
        responses.set(status, content?.schema ? compileOpen(content.schema) : null);
      }
      operations.push({
        method: method.toUpperCase(),
        op: {
          pathPattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, '([^/]+)')}$`),
          pathParams: [...path.matchAll(/\{([^}]+)\}/g)].map(([, name]) => {
            const declared = parameters.find((p) => p.in === 'path' && p.name === name);
            return { name: name!, validate: compileClosed(declared?.schema ?? { type: 'string' }) };
          }),
          queryParams: parameters
            .filter((p) => p.in === 'query')
            .map((p) => ({
              name: p.name as string,
              required: p.required === true,
              numeric: ['integer', 'number'].includes(String((p.schema as Json | undefined)?.type)),
              validate: compileClosed(p.schema),
            })),
          ...(body ? { body: compileClosed(body.schema), bodyRequired: (op.requestBody as Json).required === true } : {}),
          responses,
          headers,
        },
      });
    }
  }

  const find = (method: string, path: string) =>
    operations
      .filter((entry) => entry.method === method)
      .map(({ op }) => ({ op, groups: op.pathPattern.exec(path) }))
      .filter((m) => m.groups)
      // A literal path wins over a template that also matches it.
      .sort((a, b) => a.op.pathParams.length - b.op.pathParams.length)[0];

  return {
    requestProblems(request) {
      const match = find(request.method, request.path);
      if (!match) return [`${request.method} ${request.path} is not in ${file}`];
      const problems: string[] = [];
      match.op.pathParams.forEach((param, index) => {
        const value = decodeURIComponent(match.groups![index + 1]!);
        if (!param.validate(value)) problems.push(`path {${param.name}} = ${value}: ${describeErrors(param.validate.errors)}`);
      });
      const query = request.query ?? {};
      for (const param of match.op.queryParams) {
        const value = query[param.name];
        if (value === undefined) {
          if (param.required) problems.push(`query ${param.name} is required`);
        } else if (!param.validate(param.numeric && /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value)) {
          problems.push(`query ${param.name}: ${describeErrors(param.validate.errors)}`);
        }
      }
      for (const name of Object.keys(query)) {
        if (!match.op.queryParams.some((p) => p.name === name)) problems.push(`query ${name} is not documented`);
      }
      if (match.op.body) {
        if (request.body === undefined && !match.op.bodyRequired) return problems;
        if (!match.op.body(request.body)) problems.push(`body ${describeErrors(match.op.body.errors)}`);
      } else if (request.body !== undefined) {
        problems.push('sends a body the operation does not take');
      }
      return problems;
    },

    responseProblems(request, status, body) {
      const match = find(request.method, request.path);
      if (!match) return [`${request.method} ${request.path} is not in ${file}`];
      const key = String(status);
      if (!match.op.responses.has(key) && !match.op.responses.has('default')) {
        return [`${request.method} ${request.path} documents no ${status} answer`];
      }
      const validate = match.op.responses.has(key) ? match.op.responses.get(key) : match.op.responses.get('default');
      if (!validate) return [];
      return validate(body) ? [] : [`${status} answer ${describeErrors(validate.errors)}`];
    },

    responseHeaders(request, status) {
      const match = find(request.method, request.path);
      if (!match) return undefined;
      return match.op.headers.get(String(status)) ?? match.op.headers.get('default');
    },
  };
}
