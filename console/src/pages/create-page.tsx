/**
 * Create a video (or an image: the heading and button name what the chosen operation makes). The
 * quote (who would serve it, in which order, for how much) is asked again as the form changes and
 * shown before anything is sent; "Create" sends exactly the quoted request.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { useLocation } from 'wouter-preact';
import {
  formatMoney,
  formatNumber,
  GatewayError,
  NoAnswerError,
  quoteOrderDrawn,
  randomIdempotencyKey,
  type CreateVideoRequest,
  type ModelList,
  type Quote,
} from '../../../packages/client/src/index.js';
import { PageHeading } from '../components/page-heading.js';
import { ProblemMessage } from '../components/problem-message.js';
import { GROUPED, operationNoun } from '../display.js';
import { useSession } from '../gateway-context.js';
import { forgetDraft, storedDraft, storeDraft } from '../session.js';
import { handOver } from '../task-handoff.js';
import { passing, RETRY_MS, useGatewayData } from '../use-gateway-data.js';

const QUOTE_DELAY_MS = 350;
/**
 * A quote not answered in this long is given up: it is an estimate asked as the user types, which
 * a gateway answers in well under a second, so one that takes the request and never answers (hung,
 * or a proxy holding it) is said at once instead of after the client's 2-minute limit.
 */
const QUOTE_TIMEOUT_MS = 15_000;

interface FormState {
  model: string;
  operation: string;
  quality: string;
  prompt: string;
  negative_prompt: string;
  duration: string;
  aspect_ratio: string;
  audio: '' | 'on' | 'off';
  cfg_scale: string;
  start_image_url: string;
  end_image_url: string;
  reference_images: string;
  reference_video_url: string;
  video_url: string;
  strategy: string;
  providers: string[];
  extra: string;
}

const INITIAL: FormState = {
  model: 'kling-v3',
  operation: '',
  quality: '',
  prompt: '',
  negative_prompt: '',
  // Empty: the gateway's default (5 s) for a video; image, lip-sync, try-on and extend take none.
  duration: '',
  aspect_ratio: '',
  audio: '',
  cfg_scale: '',
  start_image_url: '',
  end_image_url: '',
  reference_images: '',
  reference_video_url: '',
  video_url: '',
  strategy: '',
  providers: [],
  extra: '',
};

/**
 * The path of the first `__proto__` key in `value` (`__proto__`, `multi_shot.0.__proto__`), or
 * null. JSON.parse keeps such a key as the object's own, but merged into the request it would set
 * the body's prototype instead of a field, and JSON.stringify would drop it without a word.
 */
function prototypeKeyIn(value: unknown, path: readonly string[] = []): string | null {
  if (!value || typeof value !== 'object') return null;
  for (const [key, item] of Object.entries(value)) {
    if (key === '__proto__') return [...path, key].join('.');
    const found = prototypeKeyIn(item, [...path, key]);
    if (found) return found;
  }
  return null;
}

/** The request body from the form: only what was filled in, plus the JSON of other fields. */
function buildRequest(form: FormState): { body: Record<string, unknown>; extraError: string | null; extraFields: string[] } {
  const body: Record<string, unknown> = { model: form.model };
  const text = (field: keyof FormState) => {
    const value = String(form[field]).trim();
    if (value) body[field] = value;
  };
  (['operation', 'quality', 'prompt', 'negative_prompt', 'aspect_ratio', 'start_image_url', 'end_image_url', 'reference_video_url', 'video_url'] as const).forEach(
    text,
  );
  if (form.duration.trim()) body.duration = Number(form.duration);
  if (form.cfg_scale.trim()) body.cfg_scale = Number(form.cfg_scale);
  if (form.audio) body.audio = form.audio === 'on';
  const references = form.reference_images.split(/\s+/).map((line) => line.trim()).filter(Boolean);
  if (references.length > 0) body.reference_images = references;
  const routing: Record<string, unknown> = {};
  if (form.strategy) routing.strategy = form.strategy;
  if (form.providers.length > 0) routing.providers = form.providers;
  if (Object.keys(routing).length > 0) body.routing = routing;
  let extraError: string | null = null;
  let extraFields: string[] = [];
  if (form.extra.trim()) {
    try {
      const extra = JSON.parse(form.extra) as unknown;
      const prototypeKey = prototypeKeyIn(extra);
      if (!extra || typeof extra !== 'object' || Array.isArray(extra)) extraError = 'Other fields must be a JSON object.';
      else if (prototypeKey) extraError = `Other fields cannot hold a "__proto__" key (at ${prototypeKey}): no field of the API has that name.`;
      else {
        Object.assign(body, extra);
        extraFields = Object.keys(extra);
      }
    } catch (error) {
      extraError = `Other fields are not valid JSON: ${(error as Error).message}`;
    }
  }
  return { body, extraError, extraFields };
}

/**
 * Whether the form gives the request something to judge: a prompt, an input or Other fields.
 * Until then every provider would refuse it for what it lacks (prompt is required…), which says
 * nothing to someone who has not started; its quote is not shown, the form says what to give instead.
 * Model, operation, duration, quality and the like only shape a request that is not there yet.
 */
function hasSubject(form: FormState): boolean {
  const given = ['prompt', 'negative_prompt', 'start_image_url', 'end_image_url', 'reference_images', 'reference_video_url', 'video_url', 'extra'] as const;
  return given.some((field) => form[field].trim() !== '');
}

function operationsOf(models: ModelList | undefined, model: string) {
  return models?.data.find((entry) => entry.model === model)?.operations ?? [];
}

/**
 * What the form makes, for its heading and button: what its operation makes; with none chosen, an
 * image when the model offers only image operations (try-on models: the gateway infers
 * virtual-try-on), else a video (every other inferred operation makes one).
 */
function formNoun(operations: ReturnType<typeof operationsOf>, operation: string): 'image' | 'video' {
  if (operation) return operationNoun(operation) === 'Image' ? 'image' : 'video';
  const onlyImages = operations.length > 0 && operations.every((entry) => operationNoun(entry.operation) === 'Image');
  return onlyImages ? 'image' : 'video';
}

/** `5`, `5 or 10`, `5, 10 or 15`. */
function listWithOr(values: readonly number[]): string {
  return values.length > 1 ? `${values.slice(0, -1).join(', ')} or ${values.at(-1)}` : values.join('');
}

/**
 * What Duration takes for `operation` of the model, from the fields its enabled providers list
 * in GET /v1/models: the seconds they take (`3–15 s`, `5 or 10 s`), or none at all (edit,
 * extend, lip-sync, images), where a typed duration would make every provider refuse the request.
 * Null while the operation is not known yet.
 */
function durationTaken(operations: ReturnType<typeof operationsOf>, operation: string | null): { takesNone: boolean; hint: string } | null {
  const entry = operation ? operations.find((item) => item.operation === operation) : undefined;
  if (!entry) return null;
  const enabled = entry.providers.filter((provider) => provider.enabled);
  const rules = (enabled.length > 0 ? enabled : entry.providers).flatMap((provider) => (provider.fields?.duration ? [provider.fields.duration] : []));
  if (rules.length === 0) return { takesNone: true, hint: `${entry.operation} takes no duration: leave it empty` };
  const seconds = new Set<number>();
  for (const rule of rules) {
    if (rule.values) for (const value of rule.values) if (typeof value === 'number') seconds.add(value);
    if (!rule.values && rule.min !== undefined && rule.max !== undefined) for (let value = Math.ceil(rule.min); value <= rule.max; value += 1) seconds.add(value);
  }
  const sorted = [...seconds].sort((a, b) => a - b);
  const range = sorted.length > 2 && sorted.every((value, index) => index === 0 || value === sorted[index - 1]! + 1);
  const taken = sorted.length === 0 ? null : range ? `${sorted[0]}–${sorted.at(-1)} s` : `${listWithOr(sorted)} s`;
  return { takesNone: false, hint: taken ? `${taken}; empty: 5` : 'Empty: 5' };
}

/** The qualities the providers offer for `operation` of a model (any operation when none is chosen). */
function qualitiesOf(operations: ReturnType<typeof operationsOf>, operation: string): string[] {
  return [
    ...new Set(
      operations
        .filter((entry) => !operation || entry.operation === operation)
        .flatMap((entry) => entry.providers.flatMap((provider) => provider.qualities)),
    ),
  ];
}

/**
 * The form after its model or operation changed: a chosen operation or quality the new choice
 * does not offer goes back to the default, so the request never carries a value its select
 * cannot show.
 */
function keepOffered(form: FormState, models: ModelList | undefined): FormState {
  if (!models) return form;
  const operations = operationsOf(models, form.model);
  const operation = operations.some((entry) => entry.operation === form.operation) ? form.operation : '';
  const quality = qualitiesOf(operations, operation).includes(form.quality) ? form.quality : '';
  return { ...form, operation, quality };
}

/** The fields the form has a control of its own for; anything else is written in "Other fields". */
const FORM_FIELDS = new Set<string>([
  'model', 'operation', 'quality', 'prompt', 'negative_prompt', 'duration', 'aspect_ratio', 'audio', 'cfg_scale',
  'start_image_url', 'end_image_url', 'reference_images', 'reference_video_url', 'video_url',
]);

/**
 * The API's field errors by the control they belong to: a field with its own control gets its
 * messages; one written in "Other fields" (metadata, multi_shot, routing…, or a field that has a
 * control but was written there, which then holds the value sent) gets them at that box, with the
 * path, so every message stands next to where it is fixed.
 */
function fieldErrorsOf(error: unknown, extraFields: readonly string[]): Map<string, string> {
  const errors = new Map<string, string>();
  if (!(error instanceof GatewayError)) return errors;
  for (const { path, message } of error.problem.errors ?? []) {
    const field = path.split('.')[0] ?? path;
    const [control, text] = FORM_FIELDS.has(field) && !extraFields.includes(field) ? [field, message] : ['extra', `${path}: ${message}`];
    errors.set(control, errors.has(control) ? `${errors.get(control)}; ${text}` : text);
  }
  return errors;
}

interface QuoteState {
  key: string;
  quote?: Quote;
  error?: unknown;
}

/**
 * What the gateway's choice of the operation reads from a request (README "The canonical
 * request"): the operation named, the model, and whether each input the inference looks at is
 * given (truthy, as the gateway tests them). Two requests alike in these get the same operation,
 * whatever else differs.
 */
function inferenceInputsOf(body: Readonly<Record<string, unknown>>): string {
  const deciding = ['lip_sync', 'video_id', 'video_url', 'reference_video_url', 'reference_images', 'start_image_url'];
  return JSON.stringify([body.operation ?? null, body.model, ...deciding.map((field) => Boolean(body[field]))]);
}

/** The Idempotency-Key of the last create sent, and the request (its JSON) it was sent with. */
interface Sent {
  request: string;
  idempotencyKey: string;
}

/** The form and last create as this tab last left them (see `storedDraft`), each field checked; else empty. */
function restoredDraft(): { form: FormState; sent: Sent | null } {
  const draft = storedDraft() as { form?: Record<string, unknown>; sent?: Record<string, unknown> } | null;
  const form: FormState = { ...INITIAL };
  const saved = draft?.form;
  if (saved && typeof saved === 'object') {
    for (const field of Object.keys(INITIAL) as (keyof FormState)[]) {
      const value = saved[field];
      if (field === 'providers') {
        if (Array.isArray(value) && value.every((item) => typeof item === 'string')) form.providers = value as string[];
      } else if (typeof value === 'string') (form as unknown as Record<string, string>)[field] = value;
    }
  }
  if (!['', 'on', 'off'].includes(form.audio)) form.audio = '';
  const sent = draft?.sent;
  const restoredSent = sent && typeof sent.request === 'string' && typeof sent.idempotencyKey === 'string' ? { request: sent.request, idempotencyKey: sent.idempotencyKey } : null;
  return { form, sent: restoredSent };
}

function keepDraft(form: FormState, sent: Sent | null): void {
  if (!sent && JSON.stringify(form) === JSON.stringify(INITIAL)) forgetDraft();
  else storeDraft({ form, sent });
}

export function CreatePage() {
  const { client } = useSession();
  const [, navigate] = useLocation();
  // What was typed here before the page was left (a link, Back, a reload) is back.
  const [draft] = useState(restoredDraft);
  const [form, setForm] = useState<FormState>(draft.form);
  const [quote, setQuote] = useState<QuoteState | null>(null);
  /**
   * The operation the gateway inferred in the last quote that answered, and the inputs it read:
   * said at Duration while they stay the same, also when a later quote is refused for another field.
   */
  const [inferred, setInferred] = useState<{ inputs: string; operation: string } | null>(null);
  const [quoting, setQuoting] = useState(false);
  /** Counts the quotes asked again after a failure that passes. */
  const [quoteAttempt, setQuoteAttempt] = useState(0);
  const [creating, setCreating] = useState(false);
  /** Why the last create was refused, and the request (its JSON) it was sent with: said only while the form asks that one. */
  const [refusedCreate, setRefusedCreate] = useState<{ request: string; error: unknown } | undefined>(undefined);
  /** The Idempotency-Key of the last create sent, and the request it was sent with. */
  const sent = useRef<Sent | null>(draft.sent);
  useEffect(() => keepDraft(form, sent.current), [form]);
  const models = useGatewayData((_c, signal) => client.listModels({ signal }), [client]);
  const providers = useGatewayData((_c, signal) => client.listProviders({ signal }), [client]);

  const { body, extraError, extraFields } = useMemo(() => buildRequest(form), [form]);
  const key = JSON.stringify(body);
  const judged = hasSubject(form);

  useEffect(() => {
    // No quote of a request Other fields cannot be read into; one on its way is aborted below.
    // A request with nothing to judge yet is quoted all the same, for the operation the gateway
    // infers (Duration says what it takes), but its quote is not shown.
    if (extraError) {
      setQuoting(false);
      return;
    }
    const aborter = new AbortController();
    let again: ReturnType<typeof setTimeout> | undefined;
    let limit: ReturnType<typeof setTimeout> | undefined;
    /** This quote was given up (QUOTE_TIMEOUT_MS passed); `replaced`: the form changed, or the page went. */
    let gaveUp = false;
    let replaced = false;
    setQuoting(true);
    const timer = setTimeout(() => {
      limit = setTimeout(() => {
        gaveUp = true;
        aborter.abort();
      }, QUOTE_TIMEOUT_MS);
      client
        .quote(body as CreateVideoRequest, { signal: aborter.signal })
        .then(
          (answer) => {
            setQuote({ key, quote: answer });
            const operation = answer.request.operation;
            if (typeof operation === 'string') setInferred({ inputs: inferenceInputsOf(body), operation });
          },
          (error: unknown) => {
            // Not asked again by itself: a gateway that hangs is likely to hang again, and each
            // try would hold the quote for another QUOTE_TIMEOUT_MS. A change of the form, or
            // Ask again, asks it.
            if (replaced) return;
            if (gaveUp) return setQuote({ key, error: new NoAnswerError(client.baseUrl, QUOTE_TIMEOUT_MS) });
            setQuote({ key, error });
            // The gateway down, restarting or busy: ask again soon, so the quote comes back by itself.
            if (passing(error)) again = setTimeout(() => setQuoteAttempt((attempt) => attempt + 1), RETRY_MS);
          },
        )
        .finally(() => {
          clearTimeout(limit);
          if (!replaced) setQuoting(false);
        });
    }, QUOTE_DELAY_MS);
    return () => {
      replaced = true;
      clearTimeout(timer);
      clearTimeout(again);
      clearTimeout(limit);
      aborter.abort();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, extraError, client, quoteAttempt]);

  const answered = quote && quote.key === key ? quote : null;
  const current = judged ? answered : null;
  const quoteHeading = useRef<HTMLHeadingElement>(null);
  // Ask again goes away with the answer: the keyboard waits at the quote's heading for it.
  const askAgain = () => {
    quoteHeading.current?.focus();
    setQuoteAttempt((attempt) => attempt + 1);
  };
  const fieldErrors = fieldErrorsOf(current?.error, extraFields);
  const canCreate = Boolean(current?.quote && current.quote.order.length > 0) && !extraError;

  const update = (field: keyof FormState) => (event: Event) => {
    const value = (event.target as HTMLInputElement).value;
    setForm((state) => (field === 'model' || field === 'operation' ? keepOffered({ ...state, [field]: value }, models.data) : { ...state, [field]: value }));
  };
  const toggleProvider = (id: string) => (event: Event) => {
    const checked = (event.target as HTMLInputElement).checked;
    setForm((state) => ({ ...state, providers: checked ? [...state.providers, id] : state.providers.filter((item) => item !== id) }));
  };

  /** Sends the request quoted (`body`, `key`): what Create does. */
  const send = async () => {
    if (creating) return;
    setCreating(true);
    setRefusedCreate(undefined);
    // One key per request: Create clicked again after an answer was lost (a dropped connection, a
    // restarting gateway) sends the same key, so the gateway answers with the task it may have
    // made instead of making a second one. A changed request gets a new key.
    // Kept with the form before it is sent, so a reload after a lost answer sends the same key.
    if (sent.current?.request !== key) sent.current = { request: key, idempotencyKey: randomIdempotencyKey('console') };
    keepDraft(form, sent.current);
    try {
      const task = await client.createVideo(body as CreateVideoRequest, { idempotencyKey: sent.current.idempotencyKey });
      // Made: New video starts empty next time.
      forgetDraft();
      // The answer is the whole task: its page shows it at once, then follows it.
      handOver(task);
      navigate(`/tasks/${encodeURIComponent(task.id)}`);
    } catch (error) {
      setRefusedCreate({ request: key, error });
      setCreating(false);
    }
  };

  const submit = (event: Event) => {
    event.preventDefault();
    if (canCreate) void send();
  };
  /**
   * Enter pressed in a field while the quote of exactly this request is still on its way (typed and
   * sent at once): the request it was pressed for. The browser submits nothing while Create is
   * disabled, so it is kept here, and sent once that quote shows a provider; dropped when the quote
   * shows none (it says why) or the form changes first.
   */
  const [createWhenQuoted, setCreateWhenQuoted] = useState<string | null>(null);
  const enterBeforeQuote = (event: KeyboardEvent) => {
    if (event.key !== 'Enter' || event.isComposing || !(event.target instanceof HTMLInputElement)) return;
    if (!canCreate && !creating && !current && !extraError && judged) setCreateWhenQuoted(key);
  };
  useEffect(() => {
    if (createWhenQuoted === null || (createWhenQuoted === key && !current)) return;
    setCreateWhenQuoted(null);
    if (createWhenQuoted === key && canCreate) void send();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [createWhenQuoted, key, current, canCreate]);
  const waitingForQuote = createWhenQuoted === key && !creating;

  const operations = operationsOf(models.data, form.model);
  const qualities = qualitiesOf(operations, form.operation);
  const noun = formNoun(operations, form.operation);
  // With no operation chosen, the one the gateway inferred in the last quote that answered, while
  // the model and the inputs it was inferred from are the same.
  const quotedOperation = inferred && inferred.inputs === inferenceInputsOf(body) ? inferred.operation : null;
  const operation = form.operation || quotedOperation;
  const duration = durationTaken(operations, operation);
  // Try-on takes the person as start_image_url and the garment as reference_images[0]; a try-on
  // model offers nothing else, so it is known before the first quote.
  const tryOn = operation === 'virtual-try-on' || (operations.length > 0 && operations.every((entry) => entry.operation === 'virtual-try-on'));
  const described = (field: string, hint?: string) => {
    const ids = [hint ? `${field}-hint` : null, fieldErrors.has(field) ? `${field}-error` : null].filter(Boolean).join(' ');
    return {
      id: `field-${field}`,
      name: field,
      ...(ids ? { 'aria-describedby': ids } : {}),
      ...(fieldErrors.has(field) ? { 'aria-invalid': 'true' as const } : {}),
    };
  };
  const errorOf = (field: string) =>
    fieldErrors.has(field) ? (
      <div id={`${field}-error`} class="field-error">
        {fieldErrors.get(field)}
      </div>
    ) : null;

  return (
    <section>
      <PageHeading title={`New ${noun}`} />
      <form class="create-form" onSubmit={submit} onKeyDown={enterBeforeQuote} noValidate>
        <div class="form-grid">
          <fieldset>
            <legend>What to make</legend>
            <div class="field">
              <label for="field-model">Model</label>
              <select {...described('model')} value={form.model} onChange={update('model')}>
                {(models.data?.data ?? [{ model: form.model }]).map((entry) => (
                  <option key={entry.model} value={entry.model}>
                    {entry.model}
                  </option>
                ))}
              </select>
              {errorOf('model')}
            </div>
            <div class="field">
              <label for="field-operation">Operation</label>
              <select {...described('operation')} value={form.operation} onChange={update('operation')}>
                <option value="">Inferred from the inputs</option>
                {operations.map((entry) => (
                  <option key={entry.operation} value={entry.operation}>
                    {entry.operation}
                  </option>
                ))}
              </select>
              {errorOf('operation')}
            </div>
            <div class="field">
              <label for="field-prompt">Prompt</label>
              {/* dir auto: a prompt typed right to left runs so, as it will on its task's page. */}
              <textarea {...described('prompt', 'prompt')} dir="auto" rows={4} value={form.prompt} onInput={update('prompt')} />
              <div id="prompt-hint" class="muted small">
                {/* Characters as the API counts them (code points): an emoji is one, not two UTF-16 units. */}
                {[...form.prompt].length} / 2500 characters (kling3api takes 2000)
              </div>
              {errorOf('prompt')}
            </div>
            <div class="field">
              <label for="field-negative_prompt">Negative prompt (optional)</label>
              <input {...described('negative_prompt')} type="text" dir="auto" value={form.negative_prompt} onInput={update('negative_prompt')} />
              {errorOf('negative_prompt')}
            </div>
            <div class="field-row">
              <div class="field">
                <label for="field-duration">Duration (seconds)</label>
                <input
                  {...described('duration', 'duration')}
                  type="number"
                  min={3}
                  max={15}
                  step={1}
                  inputMode="numeric"
                  placeholder={duration?.takesNone ? '' : '5'}
                  value={form.duration}
                  onInput={update('duration')}
                />
                <div id="duration-hint" class="muted small">
                  {duration?.hint ?? 'Empty: 5 for a video'}
                </div>
                {errorOf('duration')}
              </div>
              <div class="field">
                <label for="field-quality">Quality</label>
                <select {...described('quality')} value={form.quality} onChange={update('quality')}>
                  <option value="">Default (pro)</option>
                  {qualities.map((quality) => (
                    <option key={quality} value={quality}>
                      {quality}
                    </option>
                  ))}
                </select>
                {errorOf('quality')}
              </div>
              <div class="field">
                <label for="field-aspect_ratio">Aspect ratio</label>
                <select {...described('aspect_ratio')} value={form.aspect_ratio} onChange={update('aspect_ratio')}>
                  <option value="">Default (16:9)</option>
                  <option value="16:9">16:9</option>
                  <option value="9:16">9:16</option>
                  <option value="1:1">1:1</option>
                  <option value="auto">auto (Omni)</option>
                </select>
                {errorOf('aspect_ratio')}
              </div>
              <div class="field">
                <label for="field-audio">Audio</label>
                <select {...described('audio')} value={form.audio} onChange={update('audio')}>
                  <option value="">Default</option>
                  <option value="on">On</option>
                  <option value="off">Off</option>
                </select>
                {errorOf('audio')}
              </div>
            </div>
          </fieldset>

          <fieldset>
            <legend>Inputs (optional)</legend>
            <div class="field">
              <label for="field-start_image_url">Start image URL</label>
              <input
                {...described('start_image_url', tryOn ? 'start_image_url' : undefined)}
                type="url"
                value={form.start_image_url}
                onInput={update('start_image_url')}
              />
              {tryOn ? (
                <div id="start_image_url-hint" class="muted small">
                  Try-on: the person to dress.
                </div>
              ) : null}
              {errorOf('start_image_url')}
            </div>
            <div class="field">
              <label for="field-end_image_url">End image URL</label>
              <input {...described('end_image_url')} type="url" value={form.end_image_url} onInput={update('end_image_url')} />
              {errorOf('end_image_url')}
            </div>
            <div class="field">
              <label for="field-reference_images">Reference image URLs</label>
              <textarea {...described('reference_images', 'reference_images')} rows={2} value={form.reference_images} onInput={update('reference_images')} />
              <div id="reference_images-hint" class="muted small">
                {tryOn ? 'Try-on: the garment (one URL).' : 'One per line (Omni).'}
              </div>
              {errorOf('reference_images')}
            </div>
            <div class="field">
              <label for="field-reference_video_url">Reference video URL</label>
              <input {...described('reference_video_url')} type="url" value={form.reference_video_url} onInput={update('reference_video_url')} />
              {errorOf('reference_video_url')}
            </div>
            <div class="field">
              <label for="field-video_url">Source video URL (edit, lip-sync)</label>
              <input {...described('video_url')} type="url" value={form.video_url} onInput={update('video_url')} />
              {errorOf('video_url')}
            </div>
            <div class="field">
              <label for="field-cfg_scale">CFG scale</label>
              <input {...described('cfg_scale')} type="number" min={0} max={2} step={0.1} value={form.cfg_scale} onInput={update('cfg_scale')} />
              {errorOf('cfg_scale')}
            </div>
          </fieldset>

          <fieldset>
            <legend>Routing</legend>
            <div class="field">
              <label for="field-strategy">Strategy</label>
              <select id="field-strategy" name="strategy" value={form.strategy} onChange={update('strategy')}>
                <option value="">Gateway default</option>
                <option value="priority">priority (configured order)</option>
                <option value="cheapest">cheapest for this request</option>
                <option value="weighted">weighted</option>
                <option value="fastest">fastest recently</option>
              </select>
            </div>
            <fieldset class="inline-choices">
              <legend>Only these providers, in this order (none ticked: all)</legend>
              {(providers.data?.data ?? []).map((provider) => (
                <label key={provider.id} class="choice">
                  {/* A disabled provider can only make the request ineligible: shown, not offered. */}
                  <input
                    type="checkbox"
                    checked={form.providers.includes(provider.id)}
                    disabled={!provider.enabled && !form.providers.includes(provider.id)}
                    onChange={toggleProvider(provider.id)}
                  />{' '}
                  {provider.id}
                  {provider.enabled ? null : <span class="muted"> (disabled)</span>}
                  {form.providers.includes(provider.id) ? <span class="muted"> #{form.providers.indexOf(provider.id) + 1}</span> : null}
                </label>
              ))}
            </fieldset>
            <div class="field">
              <label for="field-extra">Other fields (JSON object, optional)</label>
              <textarea
                id="field-extra"
                name="extra"
                rows={3}
                spellcheck={false}
                placeholder='{"multi_shot": [{"prompt": "…", "duration": 5}], "metadata": {"order": "42"}}'
                value={form.extra}
                onInput={update('extra')}
                aria-describedby={extraError ? 'extra-error' : fieldErrors.has('extra') ? 'extra-hint extra-error' : 'extra-hint'}
                aria-invalid={extraError || fieldErrors.has('extra') ? 'true' : undefined}
              />
              <div id="extra-hint" class="muted small">
                Any other canonical field (multi_shot, elements, voice_ids, lip_sync, metadata, webhook_url…), merged into the request.
              </div>
              {extraError ? (
                <div id="extra-error" class="field-error">
                  {extraError}
                </div>
              ) : (
                errorOf('extra')
              )}
            </div>
          </fieldset>
        </div>

        <section class="quote panel" aria-labelledby="quote-heading" aria-busy={quoting && judged ? 'true' : 'false'}>
          <h2 id="quote-heading" tabIndex={-1} ref={quoteHeading}>
            Quote
          </h2>
          {extraError ? (
            <p class="muted">No quote until Other fields can be sent: see the message there.</p>
          ) : !judged && !answered?.error ? (
            <p class="muted">
              {tryOn
                ? 'Give the person (Start image URL) and the garment (Reference image URLs) to see which providers can make it and what it costs.'
                : `Describe the ${noun} to see which providers can make it and what it costs.`}
            </p>
          ) : (
            // Of an empty form, only an error is shown (the gateway cannot be reached…): never providers refusing it.
            <QuoteView state={judged ? current : answered} quoting={quoting && judged} onAskAgain={askAgain} />
          )}
        </section>

        {/* A changed request was not the one refused: its quote above is what stands. */}
        <ProblemMessage error={refusedCreate?.request === key ? refusedCreate.error : undefined} />
        <div class="actions">
          {/* Not disabled while creating: a disabled button loses the keyboard's focus, which a refused create would leave at the top. */}
          <button type="submit" class="primary" disabled={!canCreate} aria-disabled={creating ? 'true' : undefined} aria-describedby="create-hint">
            {creating ? 'Creating…' : waitingForQuote ? 'Waiting for the quote…' : `Create ${noun}`}
          </button>
          <span id="create-hint" class="muted small">
            {canCreate
              ? current?.quote && quoteOrderDrawn(current.quote)
                ? 'Sends the request quoted above; the create draws its own order, so the provider tried first may not be the one quoted first.'
                : `Sends the request quoted above; ${current?.quote?.order[0]} is tried first.`
              : judged || extraError
                ? 'Available once the quote shows a provider that can serve this request.'
                : `Available once the request has ${tryOn ? 'the person and the garment' : 'a prompt or an input'}: it has neither yet.`}
          </span>
        </div>
      </form>
    </section>
  );
}

/**
 * A provider's reasons and warnings in a quote: one alone as it is, several one an item each (a
 * reason may hold a `;` of its own, so joined they could not be told apart); none, a dash.
 */
function Reasons({ items }: { items: readonly string[] }) {
  if (items.length === 0) return <>—</>;
  if (items.length === 1) return <>{items[0]}</>;
  return (
    <ul class="quote-reason-list">
      {items.map((item, index) => (
        <li key={index}>{item}</li>
      ))}
    </ul>
  );
}

function QuoteView({ state, quoting, onAskAgain }: { state: QuoteState | null; quoting: boolean; onAskAgain: () => void }) {
  if (!state) return <p class="muted">{quoting ? 'Asking the gateway…' : 'Fill in the form to see the quote.'}</p>;
  if (state.error instanceof NoAnswerError) {
    return (
      <div class="problem" role="alert">
        <strong>The gateway did not answer within {QUOTE_TIMEOUT_MS / 1000} s.</strong> It took the request but sent no quote: it may be
        overloaded or stuck. The quote is asked again when the form changes.{' '}
        <button type="button" class="link-button" onClick={quoting ? undefined : onAskAgain} aria-disabled={quoting ? 'true' : undefined}>
          {quoting ? 'Asking again…' : 'Ask again'}
        </button>
      </div>
    );
  }
  if (state.error) return <ProblemMessage error={state.error} context="Quote" retrying />;
  const quote = state.quote!;
  const rows = [...quote.providers].sort((a, b) => (a.order ?? 99) - (b.order ?? 99));
  return (
    <>
      <p class="quote-summary" data-order={quote.order.join(',')}>
        {quote.order.length > 0 && quoteOrderDrawn(quote) ? (
          // One draw of `weighted`: a create draws its own, so this is no promise of the order it tries.
          <>
            Strategy <strong>{quote.strategy}</strong>: one random draw: <strong>{quote.order.join(' → ')}</strong>. Each create draws its own order;
            how often each provider is drawn first is under Why not / warnings.
          </>
        ) : quote.order.length > 0 ? (
          <>
            Strategy <strong>{quote.strategy}</strong>: tried in this order: <strong>{quote.order.join(' → ')}</strong>.
          </>
        ) : (
          <strong>No provider can serve this request as it is.</strong>
        )}
        {quoting ? <span class="muted"> (updating…)</span> : null}
      </p>
      <div class="table-scroll" role="region" aria-label="Quote by provider" tabIndex={0}>
        <table class="quote-table responsive" role="table">
          <caption class="visually-hidden">Each provider: eligible or why not, and the estimated cost</caption>
          <thead>
            <tr role="row">
              <th scope="col">Order</th>
              <th scope="col">Provider</th>
              <th scope="col">Eligible</th>
              <th scope="col" class="number">Credits</th>
              <th scope="col" class="number">Cost</th>
              <th scope="col">Why not / warnings</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((provider) => (
              <tr key={provider.provider} data-provider={provider.provider} role="row">
                <td role="cell" data-label="Order">{provider.order ?? '—'}</td>
                <th scope="row" role="rowheader" class="primary-cell">
                  {provider.provider}
                </th>
                <td role="cell" data-label="Eligible">{provider.eligible ? 'yes' : 'no'}</td>
                <td role="cell" data-label="Credits" class="number">
                  {provider.estimated_credits === null ? '—' : formatNumber(provider.estimated_credits, GROUPED)}
                </td>
                <td role="cell" data-label="Cost" class="number">
                  {provider.estimated_cost === null ? '—' : formatMoney(provider.estimated_cost, provider.currency, GROUPED)}
                </td>
                <td role="cell" data-label="Why not / warnings" class="small quote-reasons">
                  <Reasons items={[...provider.reasons, ...provider.warnings]} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
