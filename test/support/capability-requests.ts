/**
 * Canonical requests generated from a provider's capability declarations: for an offering and
 * quality, the smallest request it serves, then each field it takes at every allowed value and
 * at the edges of its limits (longest prompt, most references, highest cfg).
 */
import { CreateVideoRequest, type VideoRequest } from '../../src/core/model/canonical.js';
import { checkOffering, resolveRequest } from '../../src/core/model/capabilities.js';
import type { FieldRule, Offering } from '../../src/core/model/offerings.js';

type Json = Record<string, unknown>;

const URL_OF = (name: string) => `https://assets.example.com/${name}`;

/** Values worth trying for one field under its rule: allowed values, limits and edges. */
function valuesFor(field: string, rule: FieldRule): unknown[] {
  const most = (cap: number) => Math.min(rule.maxItems ?? cap, cap);
  switch (field) {
    case 'prompt':
    case 'negative_prompt':
      return ['a red fox in snow', 'x'.repeat(rule.maxLength ?? 2500)];
    case 'duration':
    case 'cfg_scale': {
      if (rule.values) return [...rule.values];
      return [rule.min, rule.max].filter((v) => v !== undefined);
    }
    case 'aspect_ratio':
      return rule.values ? [...rule.values] : ['16:9', '9:16', '1:1', 'auto'];
    case 'audio':
    case 'keep_original_sound':
      return rule.values ? [...rule.values] : [true, false];
    case 'start_image_url':
    case 'end_image_url':
      return [URL_OF(`${field}.png`)];
    case 'reference_video_url':
    case 'video_url':
      return [URL_OF('source.mp4')];
    case 'video_id':
      return ['vid-1234'];
    case 'reference_images': {
      const n = most(7);
      return [[URL_OF('ref-1.png')], Array.from({ length: n }, (_, i) => URL_OF(`ref-${i + 1}.png`))];
    }
    case 'voice_ids':
      return [['voice-a'], Array.from({ length: most(2) }, (_, i) => `voice-${i}`)];
    case 'elements': {
      const element = (i: number) => ({
        frontal_image_url: URL_OF(`el-${i}.png`),
        reference_image_urls: [URL_OF(`el-${i}-a.png`), URL_OF(`el-${i}-b.png`)],
      });
      return [[element(1)], Array.from({ length: most(4) }, (_, i) => element(i + 1))];
    }
    case 'multi_shot': {
      const n = most(6);
      return [
        Array.from({ length: n }, (_, i) => ({ prompt: `shot ${i + 1}` })),
        Array.from({ length: Math.min(n, 5) }, (_, i) => ({ prompt: `shot ${i + 1}`, duration: 3 })),
        [
          { prompt: 'wide', duration: 7 },
          { prompt: 'close', duration: 8 },
        ],
      ];
    }
    case 'lip_sync':
      return [
        { text: 'Hello there', voice_id: 'genshin_vindi2', voice_language: 'en', voice_speed: 1.5 },
        { audio_url: URL_OF('speech.mp3') },
      ];
    case 'camera_control':
      return [{ type: 'simple', config: { zoom: 5 } }, { type: 'down_back' }];
    default:
      throw new Error(`no test values for capability field ${field}`);
  }
}

interface Variant {
  label: string;
  input: Json;
}

function served(offering: Offering, input: Json): boolean {
  const parsed = CreateVideoRequest.safeParse(input);
  return parsed.success && checkOffering(offering, resolveRequest(parsed.data)).reasons.length === 0;
}

/** The offering's required inputs (and a prompt where it takes one). */
function requiredRequest(offering: Offering, quality: string): Json {
  const base: Json = { model: offering.model, quality, operation: offering.operation };
  for (const [field, rule] of Object.entries(offering.fields)) {
    if (rule?.required) base[field] = valuesFor(field, rule)[0];
  }
  if (base.prompt === undefined && offering.fields.prompt) base.prompt = 'a red fox in snow';
  return base;
}

/**
 * The smallest request the offering serves: its required inputs, plus one optional input when
 * a rule across fields asks for it (reference-to-video needs images or a video).
 */
function baseRequest(offering: Offering, quality: string): Json {
  const base = requiredRequest(offering, quality);
  if (served(offering, base)) return base;
  for (const [field, rule] of Object.entries(offering.fields)) {
    if (!rule || base[field] !== undefined) continue;
    const widened = { ...base, [field]: valuesFor(field, rule)[0] };
    if (served(offering, widened)) return widened;
  }
  return base;
}

/** `baseRequest` as the gateway accepts it: parsed, defaults applied. */
export function resolvedBaseRequest(offering: Offering, quality: string = offering.qualities[0]!): VideoRequest {
  return resolveRequest(CreateVideoRequest.parse(baseRequest(offering, quality))).request;
}

function withField(offering: Offering, base: Json, field: string, value: unknown): Json {
  const input: Json = { ...base, [field]: value };
  // An end frame needs a start frame (canonical rule).
  if (field === 'end_image_url' && input.start_image_url === undefined) input.start_image_url = URL_OF('start.png');
  // Shots replace the prompt where an offering takes one or the other.
  if (field === 'multi_shot' && !offering.fields.prompt?.required) delete input.prompt;
  return input;
}

export function variants(offering: Offering, quality: string): Variant[] {
  const required = requiredRequest(offering, quality);
  const base = baseRequest(offering, quality);
  const out: Variant[] = [{ label: 'base request', input: base }];
  for (const [field, rule] of Object.entries(offering.fields)) {
    if (!rule) continue;
    for (const value of valuesFor(field, rule)) {
      // On the base; failing that, on the required inputs alone (lip-sync takes a video id
      // or a video URL, not both).
      const onBase = withField(offering, base, field, value);
      const input = served(offering, onBase) ? onBase : withField(offering, required, field, value);
      out.push({ label: `${field} = ${JSON.stringify(value).slice(0, 60)}`, input });
    }
  }
  return out;
}

