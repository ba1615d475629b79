// Writes migrations/current.sql from the engine's SQL source (sql/*.sql, in file-name order), so
// that `graphile-migrate commit` turns exactly what sql/ describes into the next committed
// migration. sql/ is the single source of truth; test/migrations.test.ts fails on any drift.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function engineSqlFiles(): Promise<string[]> {
  const dir = path.join(root, 'sql');
  const names = (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort();
  return names.map((n) => path.join(dir, n));
}

async function main(): Promise<void> {
  const parts: string[] = [];
  for (const file of await engineSqlFiles()) {
    const body = await readFile(file, 'utf8');
    parts.push(`-- >>> ${path.relative(root, file)}\n${body.trimEnd()}\n`);
  }
  await writeFile(path.join(root, 'migrations', 'current.sql'), parts.join('\n'));
  console.log(`migrations/current.sql written from ${parts.length} files`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  await main();
}
