// Sizes of every figure: the (default), --quick (a smoke run in under 2 minutes) and tiny
// (the test suite's smoke test).

export interface Sizes {
  /** 1. Backfill: the book; plainRuns = runs of the plain recompute (median). perDay: also the per-day producer pattern. */
  backfill: { portfolios: number; positions: number; days: number; plainRuns: number; perDay: boolean };
  /** 2. Producer cost: history days loaded first; `repeats` timings of each statement with and without triggers. */
  producer: { portfolios: number; positions: number; history: number; repeats: number; insertRows: number };
  /** 3. Latency: one portfolio, `history` computed days, then `days` measured days. */
  latency: { positions: number; history: number; days: number };
  /** 4. Cost follows the change: long vs short history, correction `back` vs `recent` days before the last day. */
  cost: { positions: number; longHistory: number; shortHistory: number; back: number; recent: number; repeats: number };
  /** 5. No dependence on luck: the latency figure's measured days in the no-statistics run. */
  luck: { latencyDays: number };
  /** 6. Daily scale: one computed day, then one new day. */
  daily: { portfolios: number; positions: number; concurrency: number };
  /** 7. Concurrent producers. */
  producers: { portfolios: number; positions: number; days: number; sessions: number };
}

export const DEFAULT_SIZES: Sizes = {
  backfill: { portfolios: 200, positions: 25, days: 250, plainRuns: 1, perDay: true },
  producer: { portfolios: 200, positions: 25, history: 60, repeats: 30, insertRows: 100 },
  latency: { positions: 100, history: 250, days: 200 },
  cost: { positions: 100, longHistory: 2500, shortHistory: 10, back: 1250, recent: 5, repeats: 41 },
  luck: { latencyDays: 200 },
  daily: { portfolios: 10_000, positions: 50, concurrency: 2 },
  producers: { portfolios: 40, positions: 25, days: 10, sessions: 4 },
};

export const QUICK_SIZES: Sizes = {
  backfill: { portfolios: 10, positions: 10, days: 20, plainRuns: 1, perDay: true },
  producer: { portfolios: 20, positions: 10, history: 5, repeats: 7, insertRows: 100 },
  latency: { positions: 20, history: 20, days: 20 },
  cost: { positions: 10, longHistory: 250, shortHistory: 10, back: 125, recent: 5, repeats: 3 },
  luck: { latencyDays: 20 },
  daily: { portfolios: 300, positions: 10, concurrency: 2 },
  producers: { portfolios: 8, positions: 8, days: 4, sessions: 4 },
};

export const TINY_SIZES: Sizes = {
  backfill: { portfolios: 4, positions: 5, days: 8, plainRuns: 1, perDay: false },
  producer: { portfolios: 4, positions: 5, history: 3, repeats: 3, insertRows: 20 },
  latency: { positions: 8, history: 6, days: 4 },
  cost: { positions: 5, longHistory: 40, shortHistory: 5, back: 20, recent: 2, repeats: 1 },
  luck: { latencyDays: 4 },
  daily: { portfolios: 30, positions: 5, concurrency: 2 },
  producers: { portfolios: 4, positions: 5, days: 3, sessions: 4 },
};
