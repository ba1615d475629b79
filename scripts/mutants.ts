// The mutants of the mutation check (sql/mutants/NN_<name>.sql) and what their headers say.
//
// A mutant's header is its leading block of `--` comment lines, with three fields:
//   -- defect: <one sentence>
//   -- replaces: <the engine objects it replaces>
//   -- caught-by: <test files> [KEY=VALUE ...]
// A field runs on over the following indented comment lines (`--   ...`). caught-by names the
// test files expected to fail with the defect installed, and may set environment variables for
// that run (PT_ISOLATION_SPEC=<spec prefix> narrows test/isolation.test.ts to those specs).
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const mutantDir = path.join(root, 'sql', 'mutants');
/** Applied in the same session before every mutant: defines pg_temp.mutate(). Not a mutant. */
export const helperFile = path.join(mutantDir, '_mutate.sql');

export interface Mutant {
  /** File name without .sql, e.g. 07_sweep_wakes_blocked_days. */
  name: string;
  file: string;
  sql: string;
  defect: string;
  replaces: string;
  testFiles: string[];
  env: Record<string, string>;
}

const MUTANT_FILE = /^\d{2}_[a-z0-9_]+\.sql$/;

export function parseHeader(name: string, sql: string): Omit<Mutant, 'name' | 'file' | 'sql'> {
  const fields: Record<string, string> = {};
  let current: string | null = null;
  for (const line of sql.split('\n')) {
    if (!line.startsWith('--')) break;
    const field = /^-- ([a-z-]+):\s*(.*)$/.exec(line);
    if (field) {
      current = field[1]!;
      fields[current] = field[2]!.trim();
    } else if (current && /^--\s{2,}\S/.test(line)) {
      fields[current] += ' ' + line.slice(2).trim();
    } else {
      current = null;
    }
  }
  for (const required of ['defect', 'replaces', 'caught-by']) {
    if (!fields[required]) throw new Error(`${name}: the header has no "-- ${required}:" line`);
  }
  const testFiles: string[] = [];
  const env: Record<string, string> = {};
  for (const token of fields['caught-by']!.split(/\s+/)) {
    const assignment = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(token);
    if (assignment) env[assignment[1]!] = assignment[2]!;
    else testFiles.push(token);
  }
  if (testFiles.length === 0) throw new Error(`${name}: caught-by names no test file`);
  return { defect: fields.defect!, replaces: fields.replaces!, testFiles, env };
}

export async function loadMutants(): Promise<Mutant[]> {
  const names = (await readdir(mutantDir)).filter((n) => MUTANT_FILE.test(n)).sort();
  const mutants: Mutant[] = [];
  for (const n of names) {
    const file = path.join(mutantDir, n);
    const sql = await readFile(file, 'utf8');
    const name = n.replace(/\.sql$/, '');
    mutants.push({ name, file, sql, ...parseHeader(name, sql) });
  }
  return mutants;
}

/** Does some mutant's `replaces` field name this function (as a whole word)? */
export function namedBy(mutants: Mutant[], functionName: string): Mutant[] {
  const word = new RegExp(`\\b${functionName}\\b`);
  return mutants.filter((m) => word.test(m.replaces));
}
