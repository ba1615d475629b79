// A synthetic, deterministic book for the benchmark: portfolios with mixed base currencies,
// instruments in three currencies, as-of FX rates for every pair a portfolio needs, one valued
// snapshot per held position per day (epoch 0), a few cash flows per portfolio-day and a manifest
// row per portfolio-day whose expected_count is exactly the number of snapshots of that day.
//
// Everything is produced as COPY text (tab-separated, \N for NULL), one chunk per table per day,
// the way a daily producer would write it. Money is exact: scaled BigInts formatted as decimal
// strings (never floating point), so the engine and the plain recompute see identical inputs.
import { mulberry32 } from '../test/model/book.js';

export interface BookOptions {
  portfolios: number;
  positions: number;
  days: number;
  seed: number;
  /** Probability that a held position has no snapshot on a given day (it skips the day). */
  gapRate: number;
}

export interface DayChunk {
  date: string;
  snapshots: string;
  snapshotRows: number;
  cashflows: string;
  cashflowRows: number;
  manifests: string;
  manifestRows: number;
}

export interface Book {
  options: BookOptions;
  startDate: string;
  portfolios: string;
  portfolioRows: number;
  instruments: string;
  instrumentRows: number;
  fx: string;
  fxRows: number;
  days: DayChunk[];
  totals: { snapshots: number; cashflows: number; manifests: number; nullSecurityFlows: number };
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

const CURRENCIES = ['USD', 'EUR', 'GBP'] as const;
type Currency = (typeof CURRENCIES)[number];
const BASES: Currency[] = ['USD', 'EUR'];
const START_DATE = '2024-01-01';
const RATE_SCALE = 6; // FX rates carry 6 decimals
const PRICE_SCALE = 4; // prices carry 4 decimals; quantities are whole units

/** The same seeded PRNG as the tests (mulberry32). */
const rng = mulberry32;

function addDays(iso: string, n: number): string {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

const POW10: bigint[] = Array.from({ length: 20 }, (_, i) => 10n ** BigInt(i));

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

function pairKey(from: Currency, to: Currency): string {
  return `${from}->${to}`;
}

interface Position {
  securityId: string;
  currency: Currency;
  quantity: bigint;
  price: bigint; // scale PRICE_SCALE
  costLocal: bigint; // scale PRICE_SCALE
}

export function generateBook(options: BookOptions): Book {
  const { portfolios: nPortfolios, positions: nPositions, days: nDays, seed, gapRate } = options;
  const rand = rng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

  // Instruments: a pool twice the size of a portfolio, currencies round-robin over the three.
  const nInstruments = Math.max(nPositions * 2, 10);
  const instruments: { securityId: string; currency: Currency }[] = [];
  const instrumentLines: string[] = [];
  for (let i = 0; i < nInstruments; i++) {
    const securityId = `S${String(i + 1).padStart(5, '0')}`;
    const currency = CURRENCIES[i % CURRENCIES.length]!;
    instruments.push({ securityId, currency });
    instrumentLines.push(`${securityId}\t${currency}\tInstrument ${i + 1}\n`);
  }

  // Portfolios: bases alternate USD/EUR; each holds nPositions distinct instruments.
  const portfolioLines: string[] = [];
  const book: { portfolioId: string; base: Currency; positions: Position[] }[] = [];
  for (let p = 0; p < nPortfolios; p++) {
    const portfolioId = `P${String(p + 1).padStart(5, '0')}`;
    const base = BASES[p % BASES.length]!;
    portfolioLines.push(`${portfolioId}\t${base}\t${START_DATE}\t\\N\n`);
    const pool = instruments.slice();
    for (let i = pool.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    const positions = pool.slice(0, nPositions).map((inst) => {
      const quantity = BigInt(int(10, 1000));
      const price = BigInt(int(10, 500)) * POW10[PRICE_SCALE]! + BigInt(int(0, 9999));
      return { securityId: inst.securityId, currency: inst.currency, quantity, price, costLocal: quantity * price };
    });
    positions.sort((a, b) => (a.securityId < b.securityId ? -1 : 1));
    book.push({ portfolioId, base, positions });
  }

  // FX: every (instrument currency or flow currency) -> base pair, a rate every day except every
  // 7th day (a holiday), so the as-of lookup ("latest rate_date <= D") is exercised.
  const pairs: [Currency, Currency][] = [];
  for (const to of BASES) for (const from of CURRENCIES) if (from !== to) pairs.push([from, to]);
  const startRate: Record<string, number> = {
    'EUR->USD': 1.08, 'GBP->USD': 1.27, 'USD->EUR': 0.925926, 'GBP->EUR': 1.176,
  };
  const rateByPair = new Map<string, bigint>();
  for (const [from, to] of pairs) {
    rateByPair.set(pairKey(from, to), BigInt(Math.round(startRate[pairKey(from, to)]! * 10 ** RATE_SCALE)));
  }
  const fxLines: string[] = [];
  // asOf[day] = rate in force on that day (the latest one published on or before it).
  const asOf: Map<string, bigint>[] = [];
  for (let d = 0; d < nDays; d++) {
    const date = addDays(START_DATE, d);
    const today = new Map<string, bigint>();
    const holiday = d > 0 && d % 7 === 6;
    for (const [from, to] of pairs) {
      const key = pairKey(from, to);
      let rate = rateByPair.get(key)!;
      if (!holiday) {
        rate += (rate * BigInt(int(-30, 30))) / 10000n; // +-0.3%
        rateByPair.set(key, rate);
        fxLines.push(`${from}\t${to}\t${date}\t${fmt(rate, RATE_SCALE)}\n`);
      }
      today.set(key, rate);
    }
    asOf.push(today);
  }
  const rateOf = (day: number, from: Currency, to: Currency): bigint =>
    from === to ? POW10[RATE_SCALE]! : asOf[day]!.get(pairKey(from, to))!;
  // A local amount at PRICE_SCALE converted to base and rounded to cents.
  const toBaseCents = (day: number, local: bigint, from: Currency, to: Currency): bigint =>
    roundShift(local * rateOf(day, from, to), PRICE_SCALE + RATE_SCALE - 2);

  const days: DayChunk[] = [];
  const totals = { snapshots: 0, cashflows: 0, manifests: 0, nullSecurityFlows: 0 };
  for (let d = 0; d < nDays; d++) {
    const date = addDays(START_DATE, d);
    const snaps: string[] = [];
    const flows: string[] = [];
    const manifests: string[] = [];
    for (const { portfolioId, base, positions } of book) {
      let held = 0;
      let flowNo = 0;
      const present: Position[] = [];
      for (const pos of positions) {
        // Prices move every day, whether or not a snapshot is written.
        pos.price += (pos.price * BigInt(int(-200, 200))) / 10000n;
        if (pos.price < POW10[PRICE_SCALE]!) pos.price = POW10[PRICE_SCALE]!;
        if (d > 0 && rand() < gapRate) continue; // no snapshot today
        // A buy now and then: a BOD position flow, reflected in today's quantity and cost.
        if (rand() < 0.1) {
          const bought = BigInt(int(1, 50));
          const amount = bought * pos.price;
          pos.quantity += bought;
          pos.costLocal += amount;
          flows.push(`T${portfolioId}-${date}-${++flowNo}\t${portfolioId}\t${pos.securityId}\t${date}\t0\t` +
            `${fmt(amount, PRICE_SCALE)}\t${pos.currency}\tBUY\tBOD\tt\tf\n`);
        }
        const mvLocal = pos.quantity * pos.price;
        snaps.push(`${portfolioId}\t${pos.securityId}\t${date}\t0\t${pos.quantity}\t` +
          `${fmt(toBaseCents(d, pos.costLocal, pos.currency, base), 2)}\t${fmt(pos.costLocal, PRICE_SCALE)}\t` +
          `${fmt(pos.price, PRICE_SCALE)}\t${fmt(toBaseCents(d, mvLocal, pos.currency, base), 2)}\t` +
          `${fmt(mvLocal, PRICE_SCALE)}\tVALUED_CURRENT\n`);
        present.push(pos);
        held++;
      }
      // One fee per portfolio-day on a held position: EXPENSE, EOD, position and portfolio flow.
      if (present.length > 0) {
        const pos = pick(present);
        flows.push(`T${portfolioId}-${date}-${++flowNo}\t${portfolioId}\t${pos.securityId}\t${date}\t0\t` +
          `${fmt(-BigInt(int(100, 5000)), 2)}\t${pos.currency}\tEXPENSE\tEOD\tt\tt\n`);
      }
      // Sometimes a deposit (NULL security, BOD portfolio flow, any currency) ...
      if (rand() < 0.2) {
        flows.push(`T${portfolioId}-${date}-${++flowNo}\t${portfolioId}\t\\N\t${date}\t0\t` +
          `${fmt(BigInt(int(100000, 10000000)), 2)}\t${pick(CURRENCIES)}\tCASHFLOW_IN\tBOD\tf\tt\n`);
        totals.nullSecurityFlows++;
      }
      // ... and a custody fee (NULL security, EOD EXPENSE portfolio flow, base currency).
      if (rand() < 0.05) {
        flows.push(`T${portfolioId}-${date}-${++flowNo}\t${portfolioId}\t\\N\t${date}\t0\t` +
          `${fmt(-BigInt(int(1000, 50000)), 2)}\t${base}\tEXPENSE\tEOD\tf\tt\n`);
        totals.nullSecurityFlows++;
      }
      manifests.push(`${portfolioId}\t${date}\t${held}\n`);
    }
    totals.snapshots += snaps.length;
    totals.cashflows += flows.length;
    totals.manifests += manifests.length;
    days.push({
      date,
      snapshots: snaps.join(''),
      snapshotRows: snaps.length,
      cashflows: flows.join(''),
      cashflowRows: flows.length,
      manifests: manifests.join(''),
      manifestRows: manifests.length,
    });
  }

  return {
    options,
    startDate: START_DATE,
    portfolios: portfolioLines.join(''),
    portfolioRows: portfolioLines.length,
    instruments: instrumentLines.join(''),
    instrumentRows: instrumentLines.length,
    fx: fxLines.join(''),
    fxRows: fxLines.length,
    days,
    totals,
  };
}
