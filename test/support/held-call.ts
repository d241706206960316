/**
 * A hold for a simulator fault (`SimulatedFault.hold`) that the test controls: the upstream call
 * waits there until the test releases it, so the test acts while the call is on its way, for as
 * long as it needs, however slow the machine.
 */
export interface HeldCall {
  /** What to put in the fault: `injectFault({ on: 'submit', hold: held.hold })`. */
  readonly hold: { until: Promise<void>; reached: () => void };
  /** Settles once a request is held (the upstream has received it and not answered). */
  readonly reached: Promise<void>;
  /** Lets the held requests answer (as the rest of the fault says); again does nothing. */
  release(): void;
}

export function heldCall(): HeldCall {
  let release!: () => void;
  let reached!: () => void;
  const until = new Promise<void>((resolve) => (release = resolve));
  const arrived = new Promise<void>((resolve) => (reached = resolve));
  return { hold: { until, reached }, reached: arrived, release };
}
