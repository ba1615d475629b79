// The plain set-based recompute (bench/plain-recompute.sql): the baseline of figure 1 and the
// reference every scenario's engine rows are compared with.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { session } from './pg.js';

const here = path.dirname(fileURLToPath(import.meta.url));

type SectionKind = 'setup' | 'step' | 'check';
interface Section {
  kind: SectionKind;
  name: string;
  sql: string;
}

/** `-- @setup name` (run, untimed), `-- @step name` (run, timed), `-- @check name` (comparison). */
function parseSqlFile(text: string): Section[] {
  const sections: Section[] = [];
  let current: { kind: SectionKind; name: string; lines: string[] } | null = null;
  for (const line of text.split('\n')) {
    const m = /^-- @(setup|step|check) (\S+)/.exec(line);
    if (m) {
      if (current) sections.push({ kind: current.kind, name: current.name, sql: current.lines.join('\n') });
      current = { kind: m[1] as SectionKind, name: m[2]!, lines: [] };
    } else if (current) {
      current.lines.push(line);
    }
  }
  if (current) sections.push({ kind: current.kind, name: current.name, sql: current.lines.join('\n') });
  return sections;
}

let cached: Section[] | null = null;
function sections(): Section[] {
  cached ??= parseSqlFile(readFileSync(path.join(here, 'plain-recompute.sql'), 'utf8'));
  return cached;
}

export interface PlainRun {
  /** Time of each `@step` (ms). */
  steps: Record<string, number>;
  /** Their sum: the plain recompute's time. */
  ms: number;
}

/**
 * Run the recompute into pt_bench.* (setup untimed, steps timed one by one). Default: unlogged
 * tables without keys (the cheapest write there is). `keyed`: logged tables with the outputs'
 * primary keys and day index, like the contract's outputs the engine writes.
 */
export async function plainRecompute(url: string, options: { keyed?: boolean } = {}): Promise<PlainRun> {
  const sql = session(url);
  try {
    const steps: Record<string, number> = {};
    let ms = 0;
    for (const s of sections().filter((x) => x.kind !== 'check' && (options.keyed || !x.name.startsWith('keyed_')))) {
      const t = performance.now();
      await sql.unsafe(options.keyed ? s.sql.replaceAll('create unlogged table', 'create table') : s.sql).simple();
      if (s.kind === 'step') {
        steps[s.name] = performance.now() - t;
        ms += steps[s.name]!;
      }
    }
    return { steps, ms };
  } finally {
    await sql.end();
  }
}

export interface PlainCheck {
  ok: boolean;
  /** Per output table: plain_rows, engine_rows, plain_not_in_engine, engine_not_in_plain. */
  counts: Record<string, Record<string, number>>;
  message: string;
}

/** Compare pt_bench.* (the recompute) with the engine's outputs in the same database. */
export async function plainCheck(url: string): Promise<PlainCheck> {
  const sql = session(url);
  try {
    const counts: PlainCheck['counts'] = {};
    for (const s of sections().filter((x) => x.kind === 'check')) {
      const [row] = await sql.unsafe<Record<string, string>[]>(s.sql);
      counts[s.name] = Object.fromEntries(Object.entries(row!).map(([k, v]) => [k, Number(v)]));
    }
    const problems: string[] = [];
    for (const [name, c] of Object.entries(counts)) {
      if (!(c.plain_rows! > 0)) problems.push(`${name}: the plain recompute has no rows`);
      if (c.plain_rows !== c.engine_rows) problems.push(`${name}: ${c.engine_rows} engine rows, ${c.plain_rows} plain rows`);
      if (c.plain_not_in_engine !== 0 || c.engine_not_in_plain !== 0) {
        problems.push(`${name}: ${c.plain_not_in_engine} plain rows not in the engine, ${c.engine_not_in_plain} engine rows not in the plain recompute`);
      }
    }
    return {
      ok: problems.length === 0,
      counts,
      message: problems.length === 0
        ? `engine rows equal the plain recompute (${Object.entries(counts).map(([k, c]) => `${c.engine_rows} ${k.replace('_rows', '')}`).join(', ')})`
        : problems.join('; '),
    };
  } finally {
    await sql.end();
  }
}

/** Recompute (untimed) and compare: the verification every engine scenario ends with. */
export async function compareWithPlain(url: string): Promise<PlainCheck> {
  await plainRecompute(url);
  return plainCheck(url);
}
