/**
 * The canonical request's fields as command-line flags, derived from `CreateVideoRequest` in the
 * gateway's OpenAPI document: a field is a flag of the same name in kebab case (`aspect_ratio` →
 * `--aspect-ratio`), with the schema's choices and limits in its help. A field added to the API
 * becomes a flag without touching the CLI.
 *
 * - enums take one of their values; integers and numbers are parsed as such
 * - booleans are `--audio` / `--no-audio`
 * - lists of strings repeat (`--reference-images a --reference-images b`; ids also take `a,b`)
 * - string maps are `--metadata key=value`, repeated
 * - small objects are flattened one level (`--routing-strategy cheapest`) and can also be given
 *   whole as JSON (`--routing '{"strategy":"cheapest"}'`)
 * - lists of objects and unions take JSON (`--multi-shot '[{"prompt":"…","duration":5}]'`)
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import gatewayDocument from '../../openapi/gateway.json' with { type: 'json' };
import { CliError, ExitCode } from './exit-codes.js';
import { cliCommand } from './invocation.js';

interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  $ref?: string;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  description?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  maxItems?: number;
  format?: string;
  required?: string[];
}

const schemas = (gatewayDocument as unknown as { components: { schemas: Record<string, JsonSchema> } }).components.schemas;

function resolve(schema: JsonSchema): JsonSchema {
  if (!schema.$ref) return schema;
  const name = schema.$ref.replace('#/components/schemas/', '');
  const target = schemas[name];
  if (!target) throw new Error(`openapi/gateway.json: unresolved ${schema.$ref}`);
  return { ...resolve(target), ...(schema.description ? { description: schema.description } : {}) };
}

/** How one flag's value goes into the request. */
interface RequestFlag {
  /** Where in the request body (`['routing', 'strategy']`). */
  path: string[];
  /** Commander's attribute for the option. */
  attribute: string;
}

const kebab = (name: string) => name.replace(/_/g, '-');

function typeOf(schema: JsonSchema): string | undefined {
  return Array.isArray(schema.type) ? schema.type.find((type) => type !== 'null') : schema.type;
}

function limits(schema: JsonSchema): string {
  const parts: string[] = [];
  if (schema.minimum !== undefined && schema.maximum !== undefined) parts.push(`${schema.minimum}–${schema.maximum}`);
  else if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
  else if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
  if (schema.maxLength !== undefined) parts.push(`≤ ${schema.maxLength} chars`);
  if (schema.maxItems !== undefined) parts.push(`≤ ${schema.maxItems} items`);
  return parts.join(', ');
}

function describe(schema: JsonSchema, extra?: string): string {
  // Backticks (\x60) are Markdown in the document's descriptions; a terminal shows them raw.
  return [extra, limits(schema), schema.description?.replace(/\x60/g, '')].filter(Boolean).join('. ');
}

/**
 * The schema's limits, checked on the command line: a value the gateway would refuse is a
 * command-line error (exit 2) before anything is sent, worded like the flag's help.
 */
function withinRange(schema: JsonSchema, number: number): number {
  const below = schema.minimum !== undefined && number < schema.minimum;
  const above = schema.maximum !== undefined && number > schema.maximum;
  if (below || above) throw new InvalidArgumentError(`must be ${limits(schema)}.`);
  return number;
}

function parseInteger(schema: JsonSchema) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError('not an integer.');
    return withinRange(schema, Number(value));
  };
}

function parseNumber(schema: JsonSchema) {
  return (value: string): number => {
    const number = Number(value);
    if (value.trim() === '' || !Number.isFinite(number)) throw new InvalidArgumentError('not a number.');
    return withinRange(schema, number);
  };
}

/**
 * A string as the schema takes it: its length, and an http(s) URL where it asks for one (`field`
 * says which URL: every one but `webhook_url` is an input the gateway fetches).
 */
function checkString(schema: JsonSchema, value: string, field?: string): string {
  if (schema.minLength !== undefined && value.length < schema.minLength) throw new InvalidArgumentError('must not be empty.');
  // Characters as JSON Schema (and the gateway) count them: code points, an emoji being one.
  const characters = schema.maxLength !== undefined && value.length > schema.maxLength ? [...value].length : value.length;
  if (schema.maxLength !== undefined && characters > schema.maxLength) {
    throw new InvalidArgumentError(`is ${characters} characters; at most ${schema.maxLength}.`);
  }
  if (schema.format === 'uri' && !/^https?:\/\/[^/\s]/i.test(value)) {
    if (field === 'webhook_url') throw new InvalidArgumentError("not an http(s) URL: the gateway posts the task's events to it.");
    throw new InvalidArgumentError('not an http(s) URL: the gateway fetches inputs by URL (put a local file where it can fetch it first).');
  }
  return value;
}

function parseJson(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('not valid JSON.');
  }
}

function collect(split: boolean, list: JsonSchema, items: JsonSchema) {
  return (value: string, previous: string[] | undefined) => {
    const all = [...(previous ?? []), ...(split ? value.split(',').map((item) => item.trim()).filter(Boolean) : [value]).map((item) => checkString(items, item))];
    if (list.maxItems !== undefined && all.length > list.maxItems) throw new InvalidArgumentError(`${all.length} given; at most ${list.maxItems}.`);
    return all;
  };
}

function collectPair(value: string, previous: Record<string, string> | undefined) {
  const separator = value.indexOf('=');
  if (separator <= 0) throw new InvalidArgumentError('expected key=value.');
  return { ...previous, [value.slice(0, separator)]: value.slice(separator + 1) };
}

/** The options for one field (possibly several: a boolean's --no- form, an object's parts). */
function optionsFor(name: string, raw: JsonSchema, path: string[], required: boolean): { option: Option; flag: RequestFlag }[] {
  const schema = resolve(raw);
  const flagName = kebab(path.join('_'));
  const type = typeOf(schema);
  const make = (option: Option) => ({ option, flag: { path, attribute: option.attributeName() } });
  const requiredNote = required ? 'required' : undefined;

  if (schema.enum) {
    return [make(new Option(`--${flagName} <value>`, describe(schema, requiredNote)).choices(schema.enum.map(String)))];
  }
  if (type === 'integer') return [make(new Option(`--${flagName} <n>`, describe(schema, requiredNote)).argParser(parseInteger(schema)))];
  if (type === 'number') return [make(new Option(`--${flagName} <n>`, describe(schema, requiredNote)).argParser(parseNumber(schema)))];
  if (type === 'string') {
    const option = new Option(`--${flagName} <${schema.format === 'uri' ? 'url' : 'text'}>`, describe(schema, requiredNote));
    return [make(option.argParser((value: string) => checkString(schema, value, name)))];
  }
  if (type === 'boolean') {
    // Said first, as its negative says `false`: a description may be about either value.
    const positive = make(new Option(`--${flagName}`, describe(schema, `send ${name}: true`)));
    const negative = make(new Option(`--no-${flagName}`, `send ${name}: false`));
    return [positive, negative];
  }
  if (type === 'array') {
    const items = resolve(schema.items ?? {});
    if (typeOf(items) === 'string') {
      const split = items.format !== 'uri';
      const option = new Option(`--${flagName} <${split ? 'value' : 'url'}>`, describe(schema, split ? 'repeat or comma-separate' : 'repeat for more'));
      return [make(option.argParser(collect(split, schema, items)))];
    }
    return [make(new Option(`--${flagName} <json>`, describe(schema, 'JSON array')).argParser(parseJson))];
  }
  if (type === 'object' && !schema.properties && typeof schema.additionalProperties === 'object') {
    return [make(new Option(`--${flagName} <key=value>`, describe(schema, 'repeat for more')).argParser(collectPair))];
  }
  if (type === 'object' && schema.properties && path.length === 1) {
    const whole = make(new Option(`--${flagName} <json>`, describe(schema, 'JSON object')).argParser(parseJson));
    const parts = Object.entries(schema.properties).flatMap(([child, childSchema]) => optionsFor(child, childSchema, [...path, child], false));
    return [whole, ...parts];
  }
  return [make(new Option(`--${flagName} <json>`, describe(schema, 'JSON')).argParser(parseJson))];
}

/** Adds a flag for every field of CreateVideoRequest, plus `--file`; returns how to read them back. */
export function addRequestFlags(command: Command): RequestFlag[] {
  const request = resolve(schemas.CreateVideoRequest ?? {});
  const required = new Set(request.required ?? []);
  const flags: RequestFlag[] = [];
  command.option('-f, --file <path>', 'the request as a JSON file (- for stdin); flags override its fields');
  for (const [name, schema] of Object.entries(request.properties ?? {})) {
    for (const { option, flag } of optionsFor(name, schema, [name], required.has(name))) {
      command.addOption(option.helpGroup('Request fields (see the API reference for each):'));
      flags.push(flag);
    }
  }
  return flags;
}

/**
 * The parser of a command's `[prompt]` argument: checked as `--prompt` is (the schema's
 * length), so `generate "<a very long prompt>"` is a command-line error before anything is sent.
 */
export function promptArgument(): (value: string) => string {
  const prompt = resolve(resolve(schemas.CreateVideoRequest ?? {}).properties?.prompt ?? {});
  return (value: string) => checkString(prompt, value);
}

function readRequestFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read --file ${path}: ${(error as Error).message}`, ExitCode.usage);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new CliError(`--file ${path} is not valid JSON: ${(error as Error).message}`, ExitCode.usage);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CliError(`--file ${path} must hold a JSON object (the request body)`, ExitCode.usage);
  }
  return parsed as Record<string, unknown>;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return Boolean(value) && typeof value === 'object' && !Array.isArray(value);
}

/** The request body: `--file` first, then every flag given, objects merged field by field. */
export function requestFromFlags(flags: readonly RequestFlag[], options: Record<string, unknown>): Record<string, unknown> {
  const body: Record<string, unknown> = typeof options.file === 'string' ? readRequestFile(options.file) : {};
  // Whole objects (`--routing '{…}'`) before their parts (`--routing-strategy`), so parts win.
  const ordered = [...flags].sort((a, b) => a.path.length - b.path.length);
  for (const flag of ordered) {
    const value = options[flag.attribute];
    if (value === undefined) continue;
    let target = body;
    for (const key of flag.path.slice(0, -1)) {
      if (!isPlainObject(target[key])) target[key] = {};
      target = target[key] as Record<string, unknown>;
    }
    const key = flag.path[flag.path.length - 1]!;
    target[key] = isPlainObject(value) && isPlainObject(target[key]) ? { ...target[key], ...value } : value;
  }
  // The one field every request needs: said here, before anything is sent, as a command-line
  // error (the API's 400 would list every model and exit 3, "the gateway refused").
  if (body.model === undefined) throw new CliError(`missing --model (or "model" in --file): \`${cliCommand()} models\` lists them`, ExitCode.usage);
  return body;
}
