/**
 * The one rule for "the upstream refused this for its content". No provider gives that refusal
 * a code everywhere it can occur (Freepik documents none, kling3api has none, the legacy API
 * says it in free text on a failed task), so every adapter reads the wording with this rule.
 * The words are what the three providers' documents and answers have been seen to use.
 *
 * Kept narrow on purpose: a content-policy error is never failed over (SPEC §3), so a false
 * positive stops a failover that should have happened. A bare "policy" is not enough ("IP
 * whitelist policy" is the legacy API's rate-limit family); it must be a content, platform,
 * usage or community policy. Adapters decide where the rule applies (a 5xx that says "safety"
 * is still an outage), and may add codes of their own (the legacy API's 1300/1301).
 */

const CONTENT_POLICY_WORDING = new RegExp(
  [
    String.raw`content[\s_-]*(polic(y|ies)|moderation|filter|review|violation|security|safety)`,
    String.raw`(platform|usage|community)[\s_-]*polic(y|ies)`,
    'nsfw',
    'safety',
    String.raw`moderat(ion|ed)`,
    String.raw`\bflagged\b`,
    'inappropriate',
    String.raw`explicit[\s_-]*content`,
    'sensitive',
    'prohibited',
    'violat',
    String.raw`risk[\s_-]*control`,
    // Kling's own words for a refusal: risk control, sensitive, violation, review.
    '风控',
    '敏感',
    '违规',
    '审核',
  ].join('|'),
  'i',
);

/**
 * HTTP statuses whose meaning no wording can change (auth, billing, throttling): an answer with
 * one of them is never read as a refusal of the content, whatever its text says.
 */
export const NOT_CONTENT_STATUSES: ReadonlySet<number> = new Set([401, 402, 403, 429]);

/** Whether upstream text reads as a refusal of the content (see the rule above). */
export function looksLikeContentPolicy(text: string | null | undefined): boolean {
  return typeof text === 'string' && CONTENT_POLICY_WORDING.test(text);
}
