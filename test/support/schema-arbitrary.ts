/**
 * fast-check arbitraries of the values an OpenAPI document's schemas allow, written from the
 * schema alone (not from our simulators): what an independent fake of the upstream may answer.
 *
 * Covers what the three provider documents use: `$ref` to `#/components/schemas/…`, `allOf` of
 * object schemas (merged), `oneOf` / `anyOf`, OpenAPI 3.0 `nullable`, `enum`, objects with their
 * required properties always and each optional one present or absent, plus extra fields where
 * the object is open (`additionalProperties` not `false`), arrays (empty, short, and now and then
 * long, within `minItems`/`maxItems`), strings by `format` (`uri`, `uuid`, `date-time`) and
 * length, integers and numbers at and within their bounds, booleans, and any JSON where a schema
 * says nothing. Values are JSON as it arrives on the wire (no `undefined`, no NaN).
 *
 * The generator aims at validity; `answerArbitrary` also filters through the document's own
 * Ajv check (`openapi-contract.ts`), so every value it yields is one the document describes.
 */
import fc from 'fast-check';
import type { OpenApiContract } from './openapi-contract.js';

type Json = Record<string, unknown>;

export interface SchemaArbitraryOptions {
  /**
   * Arbitraries that stand for a named component schema (`#/components/schemas/<name>`), for a
   * field the document leaves open that a test wants to hit at its meaningful values too (a status
   * word typed as any string, with its known words listed in prose).
   */
  overrides?: Readonly<Record<string, fc.Arbitrary<unknown>>>;
}

/** Names an upstream might add to an object beside its documented fields. */
const EXTRA_KEYS = ['extra', 'meta', 'error', 'message', 'url', 'detail', 'progress', 'created_at', 'note', 'x-trace'];

/** Any JSON value, small. */
const anyJson: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 2 }).map((value) => JSON.parse(JSON.stringify(value)) as unknown);

/** Strings a careless or odd upstream may send in a free-text field. */
const oddStrings = fc.constantFrom('', ' ', 'null', '0', '-1', '0x10', '1e3', 'NaN', '\u00e9t\u00e9 \u2603', 'a'.repeat(300), '\n', '\u0000');

function stringArbitrary(schema: Json): fc.Arbitrary<string> {
  const minLength = typeof schema.minLength === 'number' ? schema.minLength : 0;
  const maxLength = typeof schema.maxLength === 'number' ? schema.maxLength : undefined;
  const fit = (arb: fc.Arbitrary<string>) =>
    arb.filter((text) => text.length >= minLength && (maxLength === undefined || text.length <= maxLength));
  switch (schema.format) {
    case 'uri':
      return fit(
        fc.oneof(
          { weight: 4, arbitrary: fc.webUrl({ withQueryParameters: true, withFragments: true }) },
          // Still URIs, but nothing a browser could download: the gateway must not call them results.
          { weight: 1, arbitrary: fc.constantFrom('ftp://files.example.com/v.mp4', 'urn:isbn:0451450523', 'data:video/mp4;base64,AAAA', 'file:///etc/passwd') },
        ),
      );
    case 'uuid':
      return fc.uuid();
    case 'date-time':
      return fc
        .date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
        .map((date) => date.toISOString());
    default:
      return fit(fc.oneof({ weight: 4, arbitrary: fc.string({ maxLength: maxLength ?? 40 }) }, { weight: 1, arbitrary: oddStrings }));
  }
}

function numberArbitrary(schema: Json): fc.Arbitrary<number> {
  const integer = schema.type === 'integer';
  const min = typeof schema.minimum === 'number' ? schema.minimum : undefined;
  const max = typeof schema.maximum === 'number' ? schema.maximum : undefined;
  if (integer) {
    const low = min ?? Number.MIN_SAFE_INTEGER;
    const high = max ?? Number.MAX_SAFE_INTEGER;
    return fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: Math.max(low, -1_000_000), max: Math.min(high, 1_000_000) }) },
      { weight: 1, arbitrary: fc.constantFrom(low, high, 0, -1, 1).filter((n) => n >= low && n <= high) },
    );
  }
  const low = min ?? -1e12;
  const high = max ?? 1e12;
  return fc.oneof(
    { weight: 3, arbitrary: fc.double({ min: low, max: high, noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n)) },
    { weight: 1, arbitrary: fc.constantFrom(low, high, 0, 0.5).filter((n) => n >= low && n <= high) },
  );
}

/** An arbitrary of every value `schema` (resolved against `document`'s components) allows. */
export function schemaArbitrary(document: Json, schema: unknown, options: SchemaArbitraryOptions = {}): fc.Arbitrary<unknown> {
  const schemas = ((document.components as Json | undefined)?.schemas as Json | undefined) ?? {};

  const resolve = (node: Json): Json => {
    const ref = node.$ref;
    if (typeof ref !== 'string') return node;
    const name = ref.replace('#/components/schemas/', '');
    const target = schemas[name];
    if (!target) throw new Error(`unresolved $ref ${ref}`);
    return resolve(target as Json);
  };

  /** `allOf` of object schemas as one object schema: properties and required lists merged. */
  const flatten = (node: Json): Json => {
    if (!Array.isArray(node.allOf)) return node;
    const parts = (node.allOf as Json[]).map((part) => flatten(resolve(part)));
    return {
      type: 'object',
      properties: Object.assign({}, ...parts.map((part) => (part.properties as Json | undefined) ?? {})),
      required: parts.flatMap((part) => (part.required as string[] | undefined) ?? []),
      ...(parts.some((part) => part.additionalProperties === false) ? { additionalProperties: false } : {}),
    };
  };

  const build = (raw: unknown, depth: number): fc.Arbitrary<unknown> => {
    if (!raw || typeof raw !== 'object') return anyJson;
    const ref = (raw as Json).$ref;
    if (typeof ref === 'string') {
      const override = options.overrides?.[ref.replace('#/components/schemas/', '')];
      if (override) return withNull(raw as Json, override);
    }
    const node = flatten(resolve(raw as Json));
    return withNull(raw as Json, withNull(node, bare(node, depth)));
  };

  const withNull = (node: Json, arb: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
    node.nullable === true ? fc.oneof({ weight: 3, arbitrary: arb }, { weight: 1, arbitrary: fc.constant(null) }) : arb;

  const bare = (node: Json, depth: number): fc.Arbitrary<unknown> => {
    if (Array.isArray(node.enum)) return fc.constantFrom(...(node.enum as unknown[]));
    for (const key of ['oneOf', 'anyOf'] as const) {
      if (Array.isArray(node[key])) return fc.oneof(...(node[key] as unknown[]).map((branch) => build(branch, depth)));
    }
    const type = node.type ?? (node.properties ? 'object' : node.items ? 'array' : undefined);
    switch (type) {
      case 'string':
        return stringArbitrary(node);
      case 'integer':
      case 'number':
        return numberArbitrary(node);
      case 'boolean':
        return fc.boolean();
      case 'array': {
        const minLength = typeof node.minItems === 'number' ? node.minItems : 0;
        const maxItems = typeof node.maxItems === 'number' ? node.maxItems : 40;
        const item = depth > 4 ? anyJson : build(node.items, depth + 1);
        return fc.oneof(
          { weight: 4, arbitrary: fc.array(item, { minLength, maxLength: Math.min(maxItems, 3) }) },
          { weight: 1, arbitrary: fc.array(item, { minLength: Math.min(Math.max(minLength, 10), maxItems), maxLength: maxItems }) },
        );
      }
      case 'object': {
        const properties = (node.properties as Json | undefined) ?? {};
        const required = new Set((node.required as string[] | undefined) ?? []);
        const declared = Object.fromEntries(
          Object.entries(properties).map(([name, property]) => [name, depth > 4 ? anyJson : build(property, depth + 1)]),
        );
        const record = fc.record(declared, { requiredKeys: Object.keys(properties).filter((name) => required.has(name)) });
        // A required field the object does not list the properties of is any JSON.
        const unlisted = [...required].filter((name) => !(name in properties));
        const open = node.additionalProperties !== false;
        const extraValue =
          node.additionalProperties && typeof node.additionalProperties === 'object' ? build(node.additionalProperties, depth + 1) : anyJson;
        const extraKeys = fc.constantFrom(...EXTRA_KEYS, 'zz_unknown').filter((key) => !(key in properties));
        const extras = open ? fc.dictionary(extraKeys, extraValue, { maxKeys: 2 }) : fc.constant({});
        const must = fc.record(Object.fromEntries(unlisted.map((name) => [name, anyJson])));
        return fc.tuple(extras, must, record).map(([extra, forced, own]) => ({ ...extra, ...forced, ...own }));
      }
      default:
        return anyJson;
    }
  };

  return build(schema, 0);
}

/** Every media type's schema of one documented answer (a problem form beside the plain one). */
export function responseSchemas(document: Json, method: 'get' | 'post', path: string, status: string): unknown[] {
  const operation = ((document.paths as Json)[path] as Json | undefined)?.[method] as Json | undefined;
  if (!operation) throw new Error(`${method.toUpperCase()} ${path} is not in the document`);
  const responses = (operation.responses as Json | undefined) ?? {};
  let response = (responses[status] ?? responses.default) as Json | undefined;
  if (!response) throw new Error(`${method.toUpperCase()} ${path} documents no ${status} answer`);
  if (typeof response.$ref === 'string') {
    response = ((document.components as Json).responses as Json)[response.$ref.replace('#/components/responses/', '')] as Json;
  }
  return Object.values((response.content as Json | undefined) ?? {}).map((media) => (media as Json).schema);
}

/**
 * The answers a document allows to `method path` with `status`: generated from its schema(s),
 * kept only where the document's own Ajv check agrees.
 */
export function answerArbitrary(
  document: Json,
  contract: OpenApiContract,
  request: { method: 'GET' | 'POST'; path: string; template?: string },
  status: number,
  options: SchemaArbitraryOptions = {},
): fc.Arbitrary<unknown> {
  const method = request.method.toLowerCase() as 'get' | 'post';
  const schemas = responseSchemas(document, method, request.template ?? request.path, String(status));
  const arbs = schemas.map((schema) => schemaArbitrary(document, schema, options));
  const any = arbs.length === 1 ? arbs[0]! : fc.oneof(...arbs);
  return any.filter((body) => contract.responseProblems(request, status, body).length === 0);
}
