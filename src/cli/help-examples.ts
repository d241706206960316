/**
 * The examples `kling-gateway <command> --help` ends with: how each command is used, flags and
 * all (a test holds every flag in them to the command's own).
 */
import type { Command } from 'commander';

export const COMMAND_EXAMPLES: Record<string, string[]> = {
  generate: [
    'kling-gateway generate "a red fox running through fresh snow" --model kling-v3 --wait',
    'kling-gateway generate "a fox, slow motion" --model kling-v3 --duration 10 --aspect-ratio 9:16 -o fox.mp4',
    'kling-gateway generate "the fox turns its head" --model kling-v3 --start-image-url https://example.com/fox.png',
    'kling-gateway generate -f request.json --routing-strategy cheapest --idempotency-key order-42',
    'kling-gateway generate "a fox" --model kling-v3 --json | jq -r .id',
  ],
  get: ['kling-gateway get vid_Q7m2xK9pL4tR_wZ8', 'kling-gateway get vid_Q7m2xK9pL4tR_wZ8 --wait 30', 'kling-gateway get vid_Q7m2xK9pL4tR_wZ8 --json | jq .cost'],
  wait: ['kling-gateway wait vid_Q7m2xK9pL4tR_wZ8', 'kling-gateway wait vid_Q7m2xK9pL4tR_wZ8 -o videos/ --timeout 600', 'kling-gateway wait vid_Q7m2xK9pL4tR_wZ8 --no-download --json'],
  download: ['kling-gateway download vid_Q7m2xK9pL4tR_wZ8', 'kling-gateway download vid_Q7m2xK9pL4tR_wZ8 -o fox.mp4 --force', 'kling-gateway download vid_Q7m2xK9pL4tR_wZ8 -o - | ffprobe -'],
  list: [
    'kling-gateway list',
    'kling-gateway list --status failed --provider freepik --limit 50',
    "kling-gateway list --all --json | jq -r '.data[].id'",
  ],
  quote: ['kling-gateway quote "a fox" --model kling-v3 --duration 10', 'kling-gateway quote -f request.json --routing-strategy cheapest'],
  cancel: ['kling-gateway cancel vid_Q7m2xK9pL4tR_wZ8'],
  webhooks: ['kling-gateway webhooks vid_Q7m2xK9pL4tR_wZ8'],
  models: ['kling-gateway models', 'kling-gateway models --model kling-v3 --upstream'],
  providers: ['kling-gateway providers', 'kling-gateway providers --json'],
  usage: [
    'kling-gateway usage',
    'kling-gateway usage --group-by day,provider --from 2026-11-01 --to 2026-12-01',
    'kling-gateway usage --csv > usage.csv',
    'kling-gateway usage --group-by tenant,provider --tenant acme',
  ],
  'check-config': ['kling-gateway check-config', 'kling-gateway check-config production.yaml --json'],
  migrate: ['kling-gateway migrate', 'kling-gateway migrate --database-url postgres://gateway@db:5432/gateway'],
};

/** What `kling-gateway --help` says after the commands: the environment, and a first session. */
export const PROGRAM_HELP = `Environment:
  KLING_GATEWAY_URL              the gateway (default http://127.0.0.1:8080), as --url
  KLING_GATEWAY_API_KEY          a gateway key, as --key (which shows up in ps and shell history)
  KLING_GATEWAY_REQUEST_TIMEOUT  seconds each answer may take (default 120, 0 for none)
  KLING_GATEWAY_DEBUG=1          print the stack trace of an unexpected error

Examples:
  $ export KLING_GATEWAY_API_KEY=dev-key
  $ kling-gateway generate "a red fox running through fresh snow" --model kling-v3 --wait
  $ kling-gateway list
  $ kling-gateway help generate`;

/** Adds the examples to each command's help, and the options every command takes. */
export function addExamples(command: Command): void {
  const examples = COMMAND_EXAMPLES[command.name()];
  command.configureHelp({ showGlobalOptions: true });
  if (examples) command.addHelpText('after', `\nExamples:\n${examples.map((example) => `  $ ${example}`).join('\n')}`);
}
