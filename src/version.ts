// The package's version (`--version`, the worker's start line, the build_info metric), read from
// package.json beside src/ and dist/ alike.
import { readFileSync } from 'node:fs';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
