/**
 * Every priced combination the capabilities allow — provider × model × quality × operation ×
 * duration × audio — quoted and created over HTTP with the shipped config.yaml's prices, against
 * figures this file works out on its own: Freepik's and the legacy API's from the text of
 * config.yaml (its rules read here, first match wins), kling3api's from the "Available Models"
 * table of its documentation (copied below), each valued at config.yaml's credit value. Money is
 * worked out in whole millionths with integers, so a floating-point slip in the gateway shows.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateVideoRequest } from '../../src/core/model/canonical.js';
import { checkOffering, resolveRequest } from '../../src/core/model/capabilities.js';
import type { Offering } from '../../src/core/model/offerings.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

const CONFIG_TEXT = readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), '../../config.yaml'), 'utf8');

/** config.yaml with every `${VAR:-default}` read as its default (an empty environment), innermost first. */
function shippedConfig(): any {
  let text = CONFIG_TEXT;
  for (let previous = ''; previous !== text; ) {
    previous = text;
    text = text.replace(/\$\{[A-Z0-9_]+(?::-([^${}]*))?\}/g, (_match, fallback: string | undefined) => fallback ?? '');
  }
  return parse(text);
}

/**
 * kling3api's credit table, as its documentation ("Available Models") gives it. Kling 3.0 rows
 * price per second without / with audio; O3 rows one price per second, or a fixed price per edit.
 */
const KLING3API_TABLE = `
pro-text-to-video | Pro quality text-to-video generation | 3-15s | 54/s (no audio) · 80/s (with audio)
pro-image-to-video | Pro quality image-to-video animation | 3-15s | 54/s (no audio) · 80/s (with audio)
std-text-to-video | Standard quality text-to-video | 3-15s | 40/s (no audio) · 60/s (with audio)
std-image-to-video | Standard quality image-to-video | 3-15s | 40/s (no audio) · 60/s (with audio)
o3-pro-text-to-video | O3 Pro text-to-video | 3-15s | 48/s
o3-pro-image-to-video | O3 Pro image-to-video | 3-15s | 48/s
o3-pro-reference-to-video | O3 Pro with reference images/video | 3-15s | 72/s
o3-pro-video-edit | O3 Pro video editing | auto | 435 fixed
o3-std-text-to-video | O3 Standard text-to-video | 3-15s | 36/s
o3-std-image-to-video | O3 Standard image-to-video | 3-15s | 36/s
o3-std-reference-to-video | O3 Standard reference-to-video | 3-15s | 20/s
o3-std-video-edit | O3 Standard video editing | auto | 360 fixed
`;

interface Price {
  /** Credits in ten-thousandths, per second or per task. */
  tenThousandths: number;
  perSecond: boolean;
}

const tenThousandths = (value: number | string) => Math.round(Number(value) * 10_000);

function kling3apiPrice(model: string, quality: string, operation: string, audio: boolean | undefined): Price | undefined {
  const type = `${model === 'kling-v3-omni' ? 'o3-' : ''}${quality}-${operation}`;
  const row = KLING3API_TABLE.split('\n').find((line) => line.startsWith(`${type} |`));
  if (!row) return undefined;
  const credits = row.split('|')[3]!.trim();
  const fixed = /^(\d+) fixed$/.exec(credits);
  if (fixed) return { tenThousandths: tenThousandths(fixed[1]!), perSecond: false };
  const split = /^(\d+)\/s \(no audio\) · (\d+)\/s \(with audio\)$/.exec(credits);
  if (split) return { tenThousandths: tenThousandths(audio ? split[2]! : split[1]!), perSecond: true };
  const flat = /^(\d+)\/s$/.exec(credits);
  if (flat) return { tenThousandths: tenThousandths(flat[1]!), perSecond: true };
  throw new Error(`unread credit cell ${credits}`);
}

const selects = (selector: unknown, value: unknown) =>
  selector === undefined || (Array.isArray(selector) ? selector.includes(value) : selector === value);

function configPrice(rules: any[], model: string, quality: string, operation: string, audio: boolean | undefined): Price | undefined {
  const rule = rules.find(
    (entry) =>
      selects(entry.model, model) &&
      selects(entry.quality, quality) &&
      selects(entry.operation, operation) &&
      (entry.audio === undefined || entry.audio === (audio ?? false)),
  );
  if (!rule) return undefined;
  return rule.credits_per_task !== undefined
    ? { tenThousandths: tenThousandths(rule.credits_per_task), perSecond: false }
    : { tenThousandths: tenThousandths(rule.credits_per_second), perSecond: true };
}

interface Combination {
  provider: string;
  body: Record<string, unknown>;
  credits: number;
  currencyAmount: number;
  currency: string;
}

/** A body the offering takes: its required inputs, the duration and the audio under test. */
function bodyFor(offering: Offering, quality: string, duration: number | undefined, audio: boolean | undefined): Record<string, unknown> {
  const body: Record<string, unknown> = { model: offering.model, quality, operation: offering.operation };
  const fields = offering.fields;
  if (fields.prompt) body.prompt = 'a lighthouse in a storm';
  if (fields.start_image_url?.required) body.start_image_url = 'https://example.com/person.png';
  if (fields.reference_images?.required || (offering.operation === 'reference-to-video' && !fields.reference_video_url?.required)) {
    body.reference_images = ['https://example.com/garment.png'];
  }
  if (fields.reference_video_url?.required) body.reference_video_url = 'https://example.com/reference.mp4';
  if (fields.video_url?.required) body.video_url = 'https://example.com/source.mp4';
  if (fields.video_id?.required) body.video_id = 'upstream-video-1';
  if (fields.lip_sync?.required) {
    body.lip_sync = { text: 'hello', voice_id: 'voice-1', voice_language: 'en' };
    body.video_url = 'https://example.com/source.mp4';
  }
  if (duration !== undefined) body.duration = duration;
  if (audio !== undefined) body.audio = audio;
  return body;
}

function durationsOf(offering: Offering): (number | undefined)[] {
  const rule = offering.fields.duration;
  if (!rule) return [undefined];
  if (rule.values) return rule.values as number[];
  const durations: number[] = [];
  for (let seconds = rule.min!; seconds <= rule.max!; seconds++) durations.push(seconds);
  return durations;
}

function combinations(): Combination[] {
  const config = shippedConfig();
  const all: Combination[] = [];
  for (const provider of PROVIDERS) {
    const pricing = config.providers[provider.id].pricing;
    for (const offering of provider.offerings) {
      const audios: (boolean | undefined)[] = offering.fields.audio ? [true, false] : [undefined];
      for (const quality of offering.qualities) {
        for (const duration of durationsOf(offering)) {
          for (const audio of audios) {
            const body = bodyFor(offering, quality, duration, audio);
            // A combination the offering's own rules refuse (kling-v2-6 makes audio only at pro) is not allowed.
            if (checkOffering(offering, resolveRequest(CreateVideoRequest.parse(body))).reasons.length > 0) continue;
            const price =
              provider.id === 'kling3api'
                ? kling3apiPrice(offering.model, quality, offering.operation, audio)
                : configPrice(pricing.rules, offering.model, quality, offering.operation, audio);
            if (!price) throw new Error(`${provider.id} has no price for ${offering.model} ${quality} ${offering.operation}`);
            const credits10k = price.perSecond ? price.tenThousandths * (duration ?? 1) : price.tenThousandths;
            // Whole millionths: credits (ten-thousandths) × credit value (millionths) ÷ 10^4, half up.
            const valueMicros = BigInt(Math.round(Number(pricing.credit_value) * 1_000_000));
            const scaled = BigInt(credits10k) * valueMicros;
            const micros = (scaled + 5_000n) / 10_000n;
            all.push({
              provider: provider.id,
              body,
              credits: credits10k / 10_000,
              currencyAmount: Number(micros) / 1_000_000,
              currency: pricing.currency,
            });
          }
        }
      }
    }
  }
  return all;
}

let gw: TestGateway;
const shipped = shippedConfig();
const cases = combinations();

beforeAll(async () => {
  gw = await startTestGateway({
    config: {
      limits: { creates_per_minute: 100_000 },
      providers: Object.fromEntries(PROVIDERS.map((provider) => [provider.id, { pricing: shipped.providers[provider.id].pricing, max_in_flight: 1_000 }])),
    },
  });
});

afterAll(async () => {
  await gw?.close();
});

describe("the shipped prices, for every combination the capabilities allow", () => {
  it('covers every provider and operation, with kling3api priced by its own table', () => {
    expect(new Set(cases.map((entry) => entry.provider))).toEqual(new Set(PROVIDERS.map((provider) => provider.id)));
    // 5 s Kling 3.0 pro with sound: the documentation's own example, 400 credits.
    expect(cases.find((entry) => entry.provider === 'kling3api' && entry.body.model === 'kling-v3' && entry.body.duration === 5 && entry.body.quality === 'pro' && entry.body.audio === true && entry.body.operation === 'text-to-video')?.credits).toBe(400);
  });

  it('quotes what the price table says, to the credit and the millionth', async () => {
    const wrong: unknown[] = [];
    for (const entry of cases) {
      const quote = await gw.request('POST', '/v1/videos/quote', { ...entry.body, routing: { providers: [entry.provider] } });
      const mine = quote.body.providers?.find((row: { provider: string }) => row.provider === entry.provider);
      const seen = { status: quote.status, eligible: mine?.eligible, reasons: mine?.reasons, credits: mine?.estimated_credits, cost: mine?.estimated_cost, currency: mine?.currency };
      const expected = { status: 200, eligible: true, reasons: [], credits: entry.credits, cost: entry.currencyAmount, currency: entry.currency };
      if (JSON.stringify(seen) !== JSON.stringify(expected)) wrong.push({ provider: entry.provider, body: entry.body, seen, expected });
    }
    expect(wrong).toEqual([]);
  }, 120_000);

  it('puts the same estimate on the task a create makes', async () => {
    const wrong: unknown[] = [];
    for (const entry of cases) {
      const created = await gw.create({ ...entry.body, routing: { providers: [entry.provider] } });
      // The task may wait for the provider's rate allowance (queued, no provider yet): its cost is the same.
      const seen = { status: created.status, cost: created.body.cost, planned: created.body.provider ?? entry.provider };
      const expected = {
        status: 202,
        cost: { credits: entry.credits, estimated: true, currency_amount: entry.currencyAmount, currency: entry.currency },
        planned: entry.provider,
      };
      if (JSON.stringify(seen) !== JSON.stringify(expected)) wrong.push({ provider: entry.provider, body: entry.body, seen, expected });
    }
    expect(wrong).toEqual([]);
  }, 180_000);
});
