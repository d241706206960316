/**
 * How the user ran the CLI, for the commands its hints tell them to run next: `npx kling-gateway`
 * in a clone or a project that installed it (`npm exec` ran the package's `node_modules/.bin`
 * entry, and no `kling-gateway` is on the shell's PATH, so a hint pasted as `kling-gateway …`
 * would fail), plain `kling-gateway` otherwise (installed globally, linked, or run by its path).
 */
let command = 'kling-gateway';

/**
 * Reads how this run was started: `npm exec`/`npx` says so in `npm_command`, and runs the entry of
 * `node_modules/.bin` (`script`, the path the process started as). Both, since `npm_command` is
 * inherited by whatever such a run starts. Called once per run by `runCli`.
 */
export function noteInvocation(env: NodeJS.ProcessEnv, script: string): void {
  const viaNpx = env.npm_command === 'exec' && /[\\/]node_modules[\\/]\.bin[\\/]/.test(script);
  command = viaNpx ? 'npx kling-gateway' : 'kling-gateway';
}

/** The command a hint names: `kling-gateway`, or `npx kling-gateway` when run that way. */
export function cliCommand(): string {
  return command;
}
