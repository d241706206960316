/**
 * CPU time this process spends, for tests that bound the work a hostile input costs (a pattern
 * that backtracks burns the event loop's core). Unlike the wall clock it does not grow while a
 * loaded machine (CI runs test files side by side on two cores) gives the process no core at all,
 * so the bound says how much work was done, not how busy the machine was.
 */

/** Starts counting; the function returned gives the CPU milliseconds (every thread, user and system) spent since. */
export function cpuTimer(): () => number {
  const start = process.cpuUsage();
  return () => {
    const { user, system } = process.cpuUsage(start);
    return (user + system) / 1_000;
  };
}
