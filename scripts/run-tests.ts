// Runs the tap suite and ends with the plain `N passed, N failed` line CI counts: one per top-level
// test (t.test) of every test file, read from the TAP that tap saves under .tap/test-results.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import path from 'node:path';

const resultsDir = path.join('.tap', 'test-results');
rmSync(resultsDir, { recursive: true, force: true });
const tap = spawnSync('npx', ['tap', ...process.argv.slice(2)], { stdio: 'inherit' });

let passed = 0;
let failed = 0;
const walk = (dir: string): string[] =>
  existsSync(dir)
    ? readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.tap') ? [path.join(dir, e.name)] : [],
      )
    : [];
for (const file of walk(resultsDir)) {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (/^ok \d+/.test(line)) passed++;
    else if (/^not ok \d+/.test(line) && !/# TODO/.test(line)) failed++;
  }
}
if (tap.status !== 0 && failed === 0) failed = 1; // a file that crashed before reporting
console.log(`${passed} passed, ${failed} failed`);
process.exit(tap.status === 0 && failed === 0 ? 0 : 1);
