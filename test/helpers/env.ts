// The environment for a child process that must behave as if started from a shell: without what
// tap (NODE_OPTIONS with its loaders, TAP_*) and `npm test` (npm_config_*, e.g. a local prefix
// pointing at this checkout, and INIT_CWD) put into ours.
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|_TAPJS|TAP_|NODE_OPTIONS$|INIT_CWD$|_$)/i.test(key)) continue;
    env[key] = value;
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/**
 * `[command, args]` that run `cmd` without NODE_OPTIONS. tap's process-info hook re-adds its
 * loader to NODE_OPTIONS of every child it sees spawned, whatever env is passed; `env -u` drops it
 * again in the child (which otherwise breaks programs such as TypeScript 7's tsc).
 */
export function withoutNodeOptions(cmd: string, args: string[]): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', cmd, ...args]];
}
