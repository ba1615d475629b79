// A synthetic, deterministic book for the benchmark, produced as COPY text (tab-separated, \N for
// NULL) the way upstream producers would write it.
//
// - Calendar: business days (Monday to Friday) from `startDate`; 250 days are about a year.
// - Portfolios come in groups (count, positions, first day), so one book can hold, say, a
//   portfolio with 10 years of history beside one with 10 days. Base currencies rotate over USD,
//   EUR and GBP; each portfolio holds `positions` distinct instruments from a shared pool whose
//   currencies rotate over USD, EUR, GBP, CHF and JPY.
// - FX: a rate for every (currency -> base) pair on almost every day; each pair misses about 4% of
//   days, and about 2% of days have no rates at all (a holiday), so the as-of lookup ("latest
//   rate_date <= D") is exercised. The first day has every rate.
// - Snapshots: one VALUED_CURRENT snapshot per held position per day (epoch 0); a position skips a
//   day with probability `gapRate` (never on its portfolio's first day), so BOD sometimes comes from
//   an older date. market_value_local = quantity x price; market_value is converted to the base at
//   the as-of rate.
// - Cash flows (every transaction type of the contract's examples, test/model/transaction-types.ts):
//   per present position, buys (BOD), sells (EOD) and dividends (EOD) now and then; per
//   portfolio-day, sometimes a fee on a held position (EOD EXPENSE, position and portfolio flow), a
//   deposit (NULL security, BOD, any currency), a withdrawal (NULL security, EOD, any currency), a
//   management fee (NULL security, EOD EXPENSE, base currency) and an accrual that counts nowhere.
//   A security flow is always in its instrument's currency and on a day the position is held (the
//   engine blocks anything else, and the plain recompute assumes nothing is blocked).
// - Manifests: one row per portfolio-day, expected_count = the number of that day's snapshots.
//
// Money is exact: scaled BigInts formatted as decimal strings, never floating point, so the
// engine and the plain recompute see identical inputs. Each portfolio draws from its own seeded
// generator, so adding a group does not change the data of another.
import { mulberry32 } from '../test/model/book.js';
import { transactionType } from '../test/model/transaction-types.js';

export interface PortfolioGroup {
  count: number;
  positions: number;
  /** Index of the calendar day the group's portfolios open on (their first snapshots); default 0. */
  firstDay?: number;
}

export interface BookOptions {
  groups: PortfolioGroup[];
  /** Business days in the calendar. */
  days: number;
  seed: number;
  /** Probability that a held position has no snapshot on a given day (it skips the day). */
  gapRate: number;
  /** First calendar day (moved to the next Monday-to-Friday day); default 2016-01-04. */
  startDate?: string;
}

/** One portfolio's rows of one day, as COPY lines (each ends with a newline). */
export interface PortfolioDay {
  portfolioId: string;
  snapshots: string[];
  cashflows: string[];
  manifest: string;
}

export interface BookDay {
  index: number;
  date: string;
  portfolios: PortfolioDay[];
}

export interface Book {
  options: BookOptions;
  dates: string[];
  /** Portfolio ids per group, in the order of `options.groups`. */
  groups: string[][];
  portfolios: string;
  instruments: string;
  fx: string;
  days: BookDay[];
  totals: { portfolios: number; instruments: number; fxRates: number; snapshots: number; cashflows: number; manifests: number };
}

export const PORTFOLIO_COLUMNS = ['portfolio_id', 'base_currency', 'open_date', 'close_date'];
export const INSTRUMENT_COLUMNS = ['security_id', 'currency', 'name'];
export const FX_COLUMNS = ['from_currency', 'to_currency', 'rate_date', 'rate'];
export const SNAPSHOT_COLUMNS = [
  'portfolio_id', 'security_id', 'date', 'epoch', 'quantity', 'cost_basis', 'cost_basis_local',
  'market_price', 'market_value', 'market_value_local', 'valuation_status',
];
export const CASHFLOW_COLUMNS = [
  'transaction_id', 'portfolio_id', 'security_id', 'cashflow_date', 'epoch', 'amount', 'currency',
  'classification', 'timing', 'is_position_flow', 'is_portfolio_flow',
];
export const MANIFEST_COLUMNS = ['portfolio_id', 'aggregation_date', 'expected_count'];

const CURRENCIES = ['USD', 'EUR', 'GBP', 'CHF', 'JPY'] as const;
type Currency = (typeof CURRENCIES)[number];
const BASES: Currency[] = ['USD', 'EUR', 'GBP'];
/** Value of one unit in USD, the starting point of every pair's random walk. */
const USD_VALUE: Record<Currency, number> = { USD: 1, EUR: 1.08, GBP: 1.27, CHF: 1.12, JPY: 0.0067 };
const DEFAULT_START = '2016-01-04';
const RATE_SCALE = 8; // FX rates carry 8 decimals
const PRICE_SCALE = 4; // prices carry 4 decimals; quantities are whole units
const POW10: bigint[] = Array.from({ length: 24 }, (_, i) => 10n ** BigInt(i));

/** Business days (Monday to Friday) from `start` (moved forward to a business day). */
export function businessDays(start: string, n: number): string[] {
  const d = new Date(`${start}T00:00:00Z`);
  const out: string[] = [];
  while (out.length < n) {
    const dow = d.getUTCDay();
    if (dow !== 0 && dow !== 6) out.push(d.toISOString().slice(0, 10));
    d.setUTCDate(d.getUTCDate() + 1);
  }
  return out;
}

/** A scaled integer as a decimal string: fmt(12345n, 2) = "123.45". */
function fmt(value: bigint, scale: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, '0');
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  return negative ? `-${text}` : text;
}

/** Divide by 10^shift, rounding half away from zero. */
function roundShift(value: bigint, shift: number): bigint {
  if (shift === 0) return value;
  const d = POW10[shift]!;
  const half = d / 2n;
  return value >= 0n ? (value + half) / d : -((-value + half) / d);
}

interface Position {
  securityId: string;
  currency: Currency;
  quantity: bigint;
  price: bigint; // scale PRICE_SCALE
  costLocal: bigint; // scale PRICE_SCALE
}

interface PortfolioState {
  portfolioId: string;
  base: Currency;
  firstDay: number;
  rand: () => number;
  positions: Position[];
  flowNo: number;
}

function flowLine(
  p: PortfolioState, date: string, securityId: string | null, amount: bigint, scale: number, currency: Currency, type: string,
): string {
  const t = transactionType(type);
  return `T${p.portfolioId}-${date}-${++p.flowNo}\t${p.portfolioId}\t${securityId ?? '\\N'}\t${date}\t0\t` +
    `${fmt(BigInt(t.sign) * amount, scale)}\t${currency}\t${t.classification}\t${t.timing}\t` +
    `${t.is_position_flow ? 't' : 'f'}\t${t.is_portfolio_flow ? 't' : 'f'}\n`;
}

export function generateBook(options: BookOptions): Book {
  const { groups, days: nDays, seed, gapRate } = options;
  const dates = businessDays(options.startDate ?? DEFAULT_START, nDays);
  const seeded = (stream: number) => mulberry32((seed * 2654435761 + stream * 40503 + 1) >>> 0);

  // Instruments: a pool twice the largest portfolio, currencies round-robin.
  const maxPositions = Math.max(1, ...groups.map((g) => g.positions));
  const nInstruments = Math.max(maxPositions * 2, 10);
  const instruments: { securityId: string; currency: Currency }[] = [];
  const instrumentLines: string[] = [];
  for (let i = 0; i < nInstruments; i++) {
    const securityId = `S${String(i + 1).padStart(5, '0')}`;
    const currency = CURRENCIES[i % CURRENCIES.length]!;
    instruments.push({ securityId, currency });
    instrumentLines.push(`${securityId}\t${currency}\tInstrument ${i + 1}\n`);
  }

  // Portfolios, numbered across groups.
  const states: PortfolioState[] = [];
  const groupIds: string[][] = [];
  const portfolioLines: string[] = [];
  for (const group of groups) {
    const firstDay = group.firstDay ?? 0;
    if (firstDay < 0 || firstDay >= nDays) throw new Error(`group firstDay ${firstDay} outside the calendar of ${nDays} days`);
    const ids: string[] = [];
    for (let k = 0; k < group.count; k++) {
      const n = states.length;
      const portfolioId = `P${String(n + 1).padStart(5, '0')}`;
      const base = BASES[n % BASES.length]!;
      const rand = seeded(1000 + n);
      const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
      const pool = instruments.slice();
      for (let i = pool.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [pool[i], pool[j]] = [pool[j]!, pool[i]!];
      }
      const positions = pool.slice(0, group.positions).map((inst) => {
        const quantity = BigInt(int(10, 1000));
        const price = BigInt(int(10, 500)) * POW10[PRICE_SCALE]! + BigInt(int(0, 9999));
        return { securityId: inst.securityId, currency: inst.currency, quantity, price, costLocal: quantity * price };
      });
      positions.sort((a, b) => (a.securityId < b.securityId ? -1 : 1));
      states.push({ portfolioId, base, firstDay, rand, positions, flowNo: 0 });
      ids.push(portfolioId);
      portfolioLines.push(`${portfolioId}\t${base}\t${dates[firstDay]}\t\\N\n`);
    }
    groupIds.push(ids);
  }

  // FX: every (currency -> base) pair, its own random walk, with gaps.
  const fxRand = seeded(1);
  const pairs: [Currency, Currency][] = [];
  for (const to of BASES) for (const from of CURRENCIES) if (from !== to) pairs.push([from, to]);
  const rate = new Map<string, bigint>();
  for (const [from, to] of pairs) {
    rate.set(`${from}${to}`, BigInt(Math.round((USD_VALUE[from] / USD_VALUE[to]) * 10 ** RATE_SCALE)));
  }
  const fxLines: string[] = [];
  const asOf: Map<string, bigint>[] = []; // the rate in force on each day
  for (let d = 0; d < nDays; d++) {
    const holiday = d > 0 && fxRand() < 0.02;
    for (const [from, to] of pairs) {
      const key = `${from}${to}`;
      let r = rate.get(key)!;
      r += (r * BigInt(Math.floor(fxRand() * 61) - 30)) / 10000n; // +-0.3%
      rate.set(key, r);
      const missing = fxRand() < 0.04;
      if (d === 0 || (!holiday && !missing)) {
        fxLines.push(`${from}\t${to}\t${dates[d]}\t${fmt(r, RATE_SCALE)}\n`);
        (asOf[d] ??= new Map()).set(key, r);
      }
    }
    const today = (asOf[d] ??= new Map());
    if (d > 0) for (const [key, r] of asOf[d - 1]!) if (!today.has(key)) today.set(key, r);
  }
  const rateOf = (d: number, from: Currency, to: Currency): bigint => (from === to ? POW10[RATE_SCALE]! : asOf[d]!.get(`${from}${to}`)!);
  const toBaseCents = (d: number, local: bigint, from: Currency, to: Currency): bigint =>
    roundShift(local * rateOf(d, from, to), PRICE_SCALE + RATE_SCALE - 2);

  const totals = {
    portfolios: states.length, instruments: nInstruments, fxRates: fxLines.length, snapshots: 0, cashflows: 0, manifests: 0,
  };
  const bookDays: BookDay[] = [];
  for (let d = 0; d < nDays; d++) {
    const date = dates[d]!;
    const dayPortfolios: PortfolioDay[] = [];
    for (const p of states) {
      if (d < p.firstDay) continue;
      const { rand, base } = p;
      const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
      const snaps: string[] = [];
      const flows: string[] = [];
      const present: Position[] = [];
      for (const pos of p.positions) {
        // Prices move every day, whether or not a snapshot is written.
        pos.price += (pos.price * BigInt(int(-200, 200))) / 10000n;
        if (pos.price < POW10[PRICE_SCALE]!) pos.price = POW10[PRICE_SCALE]!;
        if (d > p.firstDay && rand() < gapRate) continue; // no snapshot today
        const u = rand();
        if (u < 0.02) {
          // A buy: BOD, reflected in today's quantity and cost.
          const n = BigInt(int(1, 50));
          pos.quantity += n;
          pos.costLocal += n * pos.price;
          flows.push(flowLine(p, date, pos.securityId, n * pos.price, PRICE_SCALE, pos.currency, 'BUY'));
        } else if (u < 0.03 && pos.quantity > 1n) {
          // A sell: EOD, part of the position, cost reduced in proportion.
          const n = BigInt(int(1, Number(pos.quantity / 2n > 0n ? pos.quantity / 2n : 1n)));
          pos.costLocal -= (pos.costLocal * n) / pos.quantity;
          pos.quantity -= n;
          flows.push(flowLine(p, date, pos.securityId, n * pos.price, PRICE_SCALE, pos.currency, 'SELL'));
        } else if (u < 0.035) {
          flows.push(flowLine(p, date, pos.securityId, BigInt(int(100, 100000)), 2, pos.currency, 'DIVIDEND'));
        }
        const mvLocal = pos.quantity * pos.price;
        snaps.push(`${p.portfolioId}\t${pos.securityId}\t${date}\t0\t${pos.quantity}\t` +
          `${fmt(toBaseCents(d, pos.costLocal, pos.currency, base), 2)}\t${fmt(pos.costLocal, PRICE_SCALE)}\t` +
          `${fmt(pos.price, PRICE_SCALE)}\t${fmt(toBaseCents(d, mvLocal, pos.currency, base), 2)}\t` +
          `${fmt(mvLocal, PRICE_SCALE)}\tVALUED_CURRENT\n`);
        present.push(pos);
      }
      if (present.length > 0 && rand() < 0.2) {
        const pos = present[Math.floor(rand() * present.length)]!;
        flows.push(flowLine(p, date, pos.securityId, BigInt(int(100, 5000)), 2, pos.currency, 'FEE'));
      }
      if (rand() < 0.05) {
        flows.push(flowLine(p, date, null, BigInt(int(100000, 10000000)), 2, CURRENCIES[int(0, CURRENCIES.length - 1)]!, 'DEPOSIT'));
      }
      if (rand() < 0.03) {
        // A withdrawal paid out at portfolio level (NULL security), in any currency.
        const t = transactionType('WITHDRAWAL');
        const currency = CURRENCIES[int(0, CURRENCIES.length - 1)]!;
        flows.push(`T${p.portfolioId}-${date}-${++p.flowNo}\t${p.portfolioId}\t\\N\t${date}\t0\t` +
          `${fmt(-BigInt(int(10000, 5000000)), 2)}\t${currency}\t${t.classification}\t${t.timing}\tf\tt\n`);
      }
      if (rand() < 0.03) {
        flows.push(flowLine(p, date, null, BigInt(int(1000, 50000)), 2, base, 'MANAGEMENT_FEE'));
      }
      if (rand() < 0.01) {
        flows.push(flowLine(p, date, null, BigInt(int(100, 10000)), 2, base, 'ACCRUAL'));
      }
      totals.snapshots += snaps.length;
      totals.cashflows += flows.length;
      totals.manifests += 1;
      dayPortfolios.push({ portfolioId: p.portfolioId, snapshots: snaps, cashflows: flows, manifest: `${p.portfolioId}\t${date}\t${snaps.length}\n` });
    }
    bookDays.push({ index: d, date, portfolios: dayPortfolios });
  }

  return {
    options,
    dates,
    groups: groupIds,
    portfolios: portfolioLines.join(''),
    instruments: instrumentLines.join(''),
    fx: fxLines.join(''),
    days: bookDays,
    totals,
  };
}

export type InputTable = 'snapshots' | 'cashflows' | 'manifests';

export const TABLES: Record<InputTable, { table: string; columns: string[] }> = {
  snapshots: { table: 'public.daily_position_snapshots', columns: SNAPSHOT_COLUMNS },
  cashflows: { table: 'public.cashflows', columns: CASHFLOW_COLUMNS },
  manifests: { table: 'public.daily_aggregation_manifest', columns: MANIFEST_COLUMNS },
};

/**
 * COPY text of one input table for some days (and optionally some portfolios), in chunks of
 * about 256 kB, for streaming into a COPY.
 */
export function* copyText(
  days: Iterable<BookDay>, table: InputTable, keep: (p: PortfolioDay) => boolean = () => true,
): Generator<string> {
  let buf: string[] = [];
  let size = 0;
  for (const day of days) {
    for (const p of day.portfolios) {
      if (!keep(p)) continue;
      const lines = table === 'snapshots' ? p.snapshots : table === 'cashflows' ? p.cashflows : [p.manifest];
      for (const line of lines) {
        buf.push(line);
        size += line.length;
      }
      if (size >= 262_144) {
        yield buf.join('');
        buf = [];
        size = 0;
      }
    }
  }
  if (buf.length > 0) yield buf.join('');
}

/** A COPY line as the literal row of a multi-row INSERT ... VALUES. */
export function valuesRow(line: string): string {
  const fields = line.replace(/\n$/, '').split('\t');
  return `(${fields.map((f) => (f === '\\N' ? 'NULL' : `'${f.replace(/'/g, "''")}'`)).join(', ')})`;
}
