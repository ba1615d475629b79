// What every figure gets: sizes, the seed, the template to clone, a log, books (cached), and the
// shape of its result (rows of the final table, verifications, details for --json).
import { generateBook, type Book, type BookOptions } from './book.js';
import type { Verification } from './engine.js';
import type { BenchDb, Databases } from './pg.js';
import type { Sizes } from './sizes.js';

/** Planner statistics during the timed part: ANALYZE of every table first, or none at all. */
export type StatsMode = 'analysed' | 'none';

export interface Ctx {
  sizes: Sizes;
  seed: number;
  template: BenchDb;
  log(message: string): void;
  /** A new database cloned from the template (or from `source`), autovacuum off unless asked. */
  clone(label: string, source?: BenchDb, options?: { autovacuum?: boolean }): Promise<BenchDb>;
  /** Drop a database of this run. */
  drop(db: BenchDb): Promise<void>;
  /** Results shared between figures (figure 5 reuses the analysed runs of 1, 3 and 4). */
  memo: Map<string, unknown>;
  /** A book, generated once per run for the same options. */
  book(options: BookOptions): Book;
}

export function makeCtx(sizes: Sizes, seed: number, dbs: Databases, template: BenchDb, log: (m: string) => void, keep = false): Ctx {
  const books = new Map<string, Book>();
  return {
    sizes,
    seed,
    template,
    log,
    clone: (label, source, options) => dbs.clone(source ?? template, label, options),
    // --keep: a figure's databases stay for inspection (dropAll lists them at the end).
    drop: (db) => (keep ? Promise.resolve() : dbs.drop(db)),
    memo: new Map(),
    book(options) {
      const key = JSON.stringify(options);
      let book = books.get(key);
      if (!book) {
        const t = performance.now();
        book = generateBook(options);
        if (books.size >= 2) books.delete(books.keys().next().value!); // keep memory bounded
        books.set(key, book);
        const n = book.totals;
        log(`book: ${options.groups.map((g) => `${g.count} x ${g.positions}${g.firstDay ? ` from day ${g.firstDay}` : ''}`).join(' + ')}` +
          ` x ${options.days} days: ${n.snapshots} snapshots, ${n.cashflows} cash flows, ${n.manifests} manifest rows, ` +
          `${n.fxRates} FX rates (${((performance.now() - t) / 1000).toFixed(1)} s)`);
      }
      return book;
    },
  };
}

/** One line of the final table. `pass` null: reported, no goal. */
export interface Row {
  figure: string;
  what: string;
  measured: string;
  goal: string;
  pass: boolean | null;
  value: number | null;
}

export interface FigureResult {
  rows: Row[];
  verifications: Verification[];
  details: Record<string, unknown>;
}

export const median = (xs: number[]): number => {
  const s = xs.slice().sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Nearest-rank percentile (p in 0..100). */
export const percentile = (xs: number[], p: number): number => {
  const s = xs.slice().sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};

export const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
export const msText = (ms: number): string => `${ms.toFixed(1)} ms`;
export const ratioText = (r: number): string => `${r.toFixed(2)}x`;
export const pctText = (p: number): string => `${p >= 0 ? '+' : ''}${p.toFixed(1)}%`;

export function row(figure: string, what: string, measured: string, goal: string, pass: boolean | null, value: number | null): Row {
  return { figure, what, measured, goal, pass, value: value !== null && Number.isFinite(value) ? value : null };
}

