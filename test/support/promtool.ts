/**
 * Prometheus's own checker (Debian package `prometheus`), found on the PATH. Outside CI the tests
 * that need it are skipped when the machine lacks it; in CI (`CI=true`, where .ci/run installs it)
 * a missing promtool fails the file instead of skipping the check unseen.
 */
import { execFileSync } from 'node:child_process';

export function promtoolInstalled(): boolean {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.CI === 'true') throw new Error('promtool is required in CI (Debian package "prometheus"; .ci/run installs it)');
    return false;
  }
}
