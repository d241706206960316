/**
 * A charge a provider reported on one answer, kept with the task's `tracking` so that a later
 * answer leaving the figure out (or a task ended without a last answer) still states it as the
 * provider's own: kling3api reports `consumed_credits` at creation, the legacy API may report
 * `final_unit_deduction` while the task runs, and neither says that a later answer without the
 * figure took it back. What adapters share instead of copying.
 */
import type { ProviderTaskRef, StatusReport } from './provider.js';

export interface RememberedCharge {
  /** The tracking entry keeping an answer's figure (none when the answer has none worth keeping). */
  entryOf(report: StatusReport): Record<string, string>;
  /** The figure an earlier answer reported, as kept in the task's tracking. */
  chargedCredits(ref: ProviderTaskRef): number | undefined;
  /**
   * A status answer with the kept figure filled in when it leaves it out; one with a new figure
   * carries tracking keeping it (on top of the tracking the answer already learned, if any).
   */
  carry(ref: ProviderTaskRef, report: StatusReport): StatusReport;
}

/** A decimal figure written as text: digits with an optional fraction and exponent. */
const DECIMAL_FIGURE = /^\+?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?$/i;

/**
 * A charge as an upstream stated it: a JSON number, or text of a decimal number (resellers are
 * not always careful with JSON types), finite and not negative; anything else states none. Text
 * is read as decimal only: `Number()` would read `0x10` as 16, `0b11` as 3 and a blank as 0,
 * figures no upstream meant, which would become the task's charge and its budget's spend.
 */
export function statedCharge(raw: unknown): number | undefined {
  let value: number;
  if (typeof raw === 'number') value = raw;
  else if (typeof raw === 'string' && DECIMAL_FIGURE.test(raw.trim())) value = Number(raw.trim());
  else return undefined;
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * The figure of an answer worth keeping as the task's charge: a running answer's 0 is no charge
 * yet (as the lifecycle reads it), so it must not become the charge a later answer without a
 * figure, or a deadline, falls back on; a finished answer's figure is kept whatever it is.
 */
export function chargeToKeep(report: StatusReport): number | undefined {
  const running = report.status !== 'succeeded' && report.status !== 'failed';
  return running && report.reportedCredits === 0 ? undefined : report.reportedCredits;
}

/** The charge kept under `key` of a task's tracking, as a decimal string. */
export function rememberedCharge(key: string): RememberedCharge {
  const chargedCredits = (ref: ProviderTaskRef): number | undefined => {
    const saved = ref.tracking[key];
    const credits = saved === undefined ? Number.NaN : Number(saved);
    return Number.isFinite(credits) && credits >= 0 ? credits : undefined;
  };
  return {
    entryOf(report) {
      const charge = chargeToKeep(report);
      return charge === undefined ? {} : { [key]: String(charge) };
    },
    chargedCredits,
    carry(ref, report) {
      const kept = chargedCredits(ref);
      const charge = chargeToKeep(report);
      if (charge !== undefined) {
        if (charge === kept) return report;
        return { ...report, tracking: { ...(report.tracking ?? ref.tracking), [key]: String(charge) } };
      }
      if (kept === undefined) return report;
      return { ...report, reportedCredits: kept };
    },
  };
}
