// The demo's book, as an upstream producer would deliver it: a few portfolios in two base
// currencies (USD, EUR) holding equities, bonds and cash in USD, EUR and GBP over a year of
// business days, with daily FX rates, an opening deposit and the purchases it funds, monthly
// contributions, monthly payouts, monthly management fees, a quarterly custody fee billed in
// another currency, and quarterly dividends. Prices and rates are simulated (seeded, so every run
// gives the same book). Money is Decimal; rows carry decimal strings, as a producer writes them.
//
// With `stillArriving`, the last day looks like "today" in production: one portfolio's snapshot
// is still missing (waiting), one's price feed failed (blocked), one is not declared yet.
import { Decimal } from '../../src/index.js';
import { mulberry32 } from '../../test/model/book.js';

export interface PortfolioRow { portfolio_id: string; base_currency: string; open_date: string; close_date: null }
export interface InstrumentRow { security_id: string; currency: string; name: string }
export interface FxRow { from_currency: string; to_currency: string; rate_date: string; rate: string }
export interface SnapshotRow {
  portfolio_id: string; security_id: string; date: string; quantity: string; cost_basis: string;
  cost_basis_local: string; market_price: string | null; market_value: string | null;
  market_value_local: string | null; valuation_status: string;
}
export interface CashflowRow {
  transaction_id: string; portfolio_id: string; security_id: string | null; cashflow_date: string;
  amount: string; currency: string; classification: string; timing: 'BOD' | 'EOD';
  is_position_flow: boolean; is_portfolio_flow: boolean;
}
export interface ManifestRow { portfolio_id: string; aggregation_date: string; expected_count: number }

export interface BookDay {
  date: string;
  fx: FxRow[];
  snapshots: SnapshotRow[];
  cashflows: CashflowRow[];
  manifests: ManifestRow[];
}

export interface DemoBook {
  portfolios: PortfolioRow[];
  instruments: InstrumentRow[];
  days: BookDay[];
  /** Rows of each kind, for progress. */
  counts: { snapshots: number; cashflows: number; fx: number; manifests: number };
}

export interface BookOptions {
  /** First business day. */
  start?: string;
  /** Business days (Monday to Friday). */
  days?: number;
  seed?: number;
  /** Only these portfolios (default: all four). */
  portfolios?: string[];
  /** Leave the last day incomplete the way a production "today" is. Default true. */
  stillArriving?: boolean;
}

interface InstrumentSpec { id: string; currency: string; name: string; price: number; drift: number; vol: number; dividendYield: number }

const INSTRUMENTS: InstrumentSpec[] = [
  { id: 'US_EQ_TECH', currency: 'USD', name: 'US technology equities (simulated)', price: 182.5, drift: 0.12, vol: 0.28, dividendYield: 0.006 },
  { id: 'US_EQ_HEALTH', currency: 'USD', name: 'US health care equities (simulated)', price: 96.2, drift: 0.07, vol: 0.18, dividendYield: 0.016 },
  { id: 'US_BOND_10Y', currency: 'USD', name: 'US Treasury 10 years (simulated)', price: 98.4, drift: 0.02, vol: 0.06, dividendYield: 0.041 },
  { id: 'EU_EQ_INDUSTRIAL', currency: 'EUR', name: 'European industrial equities (simulated)', price: 74.1, drift: 0.08, vol: 0.2, dividendYield: 0.024 },
  { id: 'EU_EQ_SOFTWARE', currency: 'EUR', name: 'European software equities (simulated)', price: 211.0, drift: 0.1, vol: 0.25, dividendYield: 0.01 },
  { id: 'EU_BOND_10Y', currency: 'EUR', name: 'German Bund 10 years (simulated)', price: 101.3, drift: 0.01, vol: 0.05, dividendYield: 0.025 },
  { id: 'UK_EQ_ENERGY', currency: 'GBP', name: 'UK energy equities (simulated)', price: 27.4, drift: 0.04, vol: 0.22, dividendYield: 0.038 },
  { id: 'UK_EQ_STAPLES', currency: 'GBP', name: 'UK consumer staples equities (simulated)', price: 41.8, drift: 0.05, vol: 0.15, dividendYield: 0.032 },
  { id: 'CASH_USD', currency: 'USD', name: 'US dollar cash', price: 1, drift: 0, vol: 0, dividendYield: 0 },
  { id: 'CASH_EUR', currency: 'EUR', name: 'Euro cash', price: 1, drift: 0, vol: 0, dividendYield: 0 },
];

interface PortfolioSpec {
  id: string;
  base: 'USD' | 'EUR';
  opening: number;
  /** Target weights of the opening purchase; the rest stays in cash. */
  holdings: [string, number][];
  /** BOD deposit on the first business day of every later month (base currency). */
  monthlyContribution: number;
  /** EOD withdrawal from cash mid-month, as a fraction of the portfolio's value. */
  monthlyPayout: number;
  /** Management fee, annual fraction of the portfolio's value, charged at each month end. */
  annualFee: number;
  /** Quarterly custody fee, billed in this currency (another than the base). */
  custodyFee?: [number, string];
}

export const DEMO_PORTFOLIOS: PortfolioSpec[] = [
  { id: 'GROWTH_USD', base: 'USD', opening: 2_500_000,
    holdings: [['US_EQ_TECH', 0.4], ['US_EQ_HEALTH', 0.2], ['EU_EQ_SOFTWARE', 0.2], ['UK_EQ_ENERGY', 0.12]],
    monthlyContribution: 0, monthlyPayout: 0, annualFee: 0.009 },
  { id: 'INCOME_USD', base: 'USD', opening: 1_200_000,
    holdings: [['US_BOND_10Y', 0.45], ['US_EQ_HEALTH', 0.15], ['UK_EQ_STAPLES', 0.15], ['EU_BOND_10Y', 0.15]],
    monthlyContribution: 0, monthlyPayout: 0.004, annualFee: 0.006 },
  { id: 'BALANCED_EUR', base: 'EUR', opening: 1_800_000,
    holdings: [['EU_EQ_INDUSTRIAL', 0.2], ['EU_EQ_SOFTWARE', 0.15], ['EU_BOND_10Y', 0.3], ['US_EQ_TECH', 0.15], ['UK_EQ_STAPLES', 0.1]],
    monthlyContribution: 20_000, monthlyPayout: 0, annualFee: 0.007, custodyFee: [1_500, 'USD'] },
  { id: 'PENSION_EUR', base: 'EUR', opening: 900_000,
    holdings: [['EU_BOND_10Y', 0.4], ['US_BOND_10Y', 0.2], ['EU_EQ_INDUSTRIAL', 0.15], ['UK_EQ_ENERGY', 0.1]],
    monthlyContribution: 35_000, monthlyPayout: 0, annualFee: 0.004, custodyFee: [800, 'GBP'] },
];

/** Business days (Monday to Friday) from `start`, `count` of them. */
export function businessDays(start: string, count: number): string[] {
  const out: string[] = [];
  const d = new Date(`${start}T00:00:00Z`);
  while (out.length < count) {
    const wd = d.getUTCDay();
    if (wd !== 0 && wd !== 6) out.push(d.toISOString().slice(0, 10));
    d.setUTCDate(d.getUTCDate() + 1);
  }
  return out;
}

const money = (d: Decimal) => d.toDecimalPlaces(2).toFixed(2);
const D = (n: number | string) => new Decimal(n);

export function demoBook(options: BookOptions = {}): DemoBook {
  const start = options.start ?? '2025-01-02';
  const dates = businessDays(start, options.days ?? 260);
  const rng = mulberry32(options.seed ?? 20250102);
  const normal = () => {
    // Box-Muller: the simulation's randomness is a float; every amount derived from it is Decimal.
    const u = Math.max(rng(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
  };
  const specs = DEMO_PORTFOLIOS.filter((p) => !options.portfolios || options.portfolios.includes(p.id));
  const stillArriving = options.stillArriving ?? true;
  const dt = 1 / 252;

  // Prices and FX, one value per business day.
  const prices = new Map<string, Decimal[]>();
  for (const spec of INSTRUMENTS) {
    const series: Decimal[] = [];
    let p = D(spec.price);
    for (let i = 0; i < dates.length; i++) {
      if (i > 0 && spec.vol > 0) {
        const step = Math.exp((spec.drift - (spec.vol * spec.vol) / 2) * dt + spec.vol * Math.sqrt(dt) * normal());
        p = p.times(step.toFixed(8)).toDecimalPlaces(2);
      }
      series.push(p);
    }
    prices.set(spec.id, series);
  }
  const walk = (start: number, vol: number) => {
    const s: Decimal[] = [];
    let r = D(start);
    for (let i = 0; i < dates.length; i++) {
      if (i > 0) r = r.times(Math.exp(vol * Math.sqrt(dt) * normal()).toFixed(8)).toDecimalPlaces(6);
      s.push(r);
    }
    return s;
  };
  const eurUsd = walk(1.085, 0.07);
  const gbpUsd = walk(1.27, 0.08);
  const rates = new Map<string, Decimal[]>([
    ['EUR>USD', eurUsd],
    ['GBP>USD', gbpUsd],
    ['USD>EUR', eurUsd.map((r) => D(1).div(r).toDecimalPlaces(6))],
    ['GBP>EUR', gbpUsd.map((r, i) => r.div(eurUsd[i]!).toDecimalPlaces(6))],
  ]);
  const rate = (from: string, to: string, i: number): Decimal => (from === to ? D(1) : rates.get(`${from}>${to}`)![i]!);
  const instrument = (id: string) => INSTRUMENTS.find((x) => x.id === id)!;
  const price = (id: string, i: number) => prices.get(id)![i]!;

  const days: BookDay[] = dates.map((date, i) => ({
    date,
    fx: [...rates].map(([pair, series]) => {
      const [from, to] = pair.split('>') as [string, string];
      return { from_currency: from, to_currency: to, rate_date: date, rate: series[i]!.toFixed(6) };
    }),
    snapshots: [],
    cashflows: [],
    manifests: [],
  }));

  for (const spec of specs) {
    const cashId = `CASH_${spec.base}`;
    let cash = D(0);
    let txn = 0;
    const flow = (i: number, f: Omit<CashflowRow, 'transaction_id' | 'portfolio_id' | 'cashflow_date'>) =>
      days[i]!.cashflows.push({ transaction_id: `${spec.id}-${String(++txn).padStart(5, '0')}`, portfolio_id: spec.id, cashflow_date: dates[i]!, ...f });
    const held: { id: string; qty: Decimal; costBase: Decimal; costLocal: Decimal }[] = [];
    let previousValue = D(spec.opening);

    for (let i = 0; i < dates.length; i++) {
      const date = dates[i]!;
      const month = date.slice(0, 7);
      const firstOfMonth = i === 0 || dates[i - 1]!.slice(0, 7) !== month;
      const lastOfMonth = i === dates.length - 1 || dates[i + 1]!.slice(0, 7) !== month;
      const midMonth = !firstOfMonth && Number(date.slice(8)) >= 15 && Number(dates[i - 1]!.slice(8)) < 15;
      const quarterEnd = lastOfMonth && ['03', '06', '09', '12'].includes(date.slice(5, 7));

      if (i === 0) {
        // Opening deposit (portfolio-level, BOD), then the purchases it funds (position flows).
        flow(i, { security_id: null, amount: money(D(spec.opening)), currency: spec.base, classification: 'CASHFLOW_IN', timing: 'BOD', is_position_flow: false, is_portfolio_flow: true });
        cash = cash.plus(spec.opening);
        for (const [id, weight] of spec.holdings) {
          const inst = instrument(id);
          const fx = rate(inst.currency, spec.base, i);
          const qty = D(spec.opening).times(weight).div(price(id, i).times(fx)).floor();
          const costLocal = qty.times(price(id, i)).toDecimalPlaces(2);
          const costBase = costLocal.times(fx).toDecimalPlaces(2);
          flow(i, { security_id: id, amount: money(costLocal.neg()), currency: inst.currency, classification: 'INVESTMENT_OUTFLOW', timing: 'BOD', is_position_flow: true, is_portfolio_flow: false });
          cash = cash.minus(costBase);
          held.push({ id, qty, costBase, costLocal });
        }
      } else if (firstOfMonth && spec.monthlyContribution > 0) {
        flow(i, { security_id: null, amount: money(D(spec.monthlyContribution)), currency: spec.base, classification: 'CASHFLOW_IN', timing: 'BOD', is_position_flow: false, is_portfolio_flow: true });
        cash = cash.plus(spec.monthlyContribution);
      }
      if (midMonth && spec.monthlyPayout > 0) {
        // Paid out of the cash position: a flow of the position and of the portfolio, never a fee.
        const payout = Decimal.min(previousValue.times(spec.monthlyPayout), cash.times(0.9)).toDecimalPlaces(2);
        flow(i, { security_id: cashId, amount: money(payout.neg()), currency: spec.base, classification: 'CASHFLOW_OUT', timing: 'EOD', is_position_flow: true, is_portfolio_flow: true });
        cash = cash.minus(payout);
      }
      if (quarterEnd) {
        for (const h of held) {
          const inst = instrument(h.id);
          if (inst.dividendYield === 0) continue;
          const dividend = h.qty.times(price(h.id, i)).times(inst.dividendYield / 4).toDecimalPlaces(2);
          flow(i, { security_id: h.id, amount: money(dividend), currency: inst.currency, classification: 'INCOME', timing: 'EOD', is_position_flow: true, is_portfolio_flow: false });
          cash = cash.plus(dividend.times(rate(inst.currency, spec.base, i)).toDecimalPlaces(2));
        }
        if (spec.custodyFee) {
          const [amount, currency] = spec.custodyFee;
          flow(i, { security_id: null, amount: money(D(-amount)), currency, classification: 'EXPENSE', timing: 'EOD', is_position_flow: false, is_portfolio_flow: true });
          cash = cash.minus(D(amount).times(rate(currency, spec.base, i)).toDecimalPlaces(2));
        }
      }
      if (lastOfMonth) {
        const fee = previousValue.times(spec.annualFee).div(12).toDecimalPlaces(2);
        flow(i, { security_id: null, amount: money(fee.neg()), currency: spec.base, classification: 'EXPENSE', timing: 'EOD', is_position_flow: false, is_portfolio_flow: true });
        cash = cash.minus(fee);
      }

      // End-of-day valuations: every holding and the cash position.
      const snapshots: SnapshotRow[] = held.map((h) => {
        const inst = instrument(h.id);
        const local = h.qty.times(price(h.id, i)).toDecimalPlaces(2);
        return {
          portfolio_id: spec.id, security_id: h.id, date, quantity: h.qty.toFixed(0), cost_basis: money(h.costBase),
          cost_basis_local: money(h.costLocal), market_price: price(h.id, i).toFixed(2),
          market_value: money(local.times(rate(inst.currency, spec.base, i))), market_value_local: money(local),
          valuation_status: 'VALUED_CURRENT',
        };
      });
      snapshots.push({
        portfolio_id: spec.id, security_id: cashId, date, quantity: money(cash), cost_basis: money(cash),
        cost_basis_local: money(cash), market_price: '1.00', market_value: money(cash), market_value_local: money(cash),
        valuation_status: 'VALUED_CURRENT',
      });
      previousValue = snapshots.reduce((sum, s) => sum.plus(s.market_value!), D(0));

      let declare = true;
      const expected = snapshots.length;
      if (stillArriving && i === dates.length - 1 && i > 0) {
        if (spec.id === 'PENSION_EUR') snapshots.splice(0, 1); // one position not delivered yet
        if (spec.id === 'INCOME_USD') declare = false; // the producer has not sealed the day yet
        if (spec.id === 'GROWTH_USD') {
          // the price feed failed for one position: delivered unvalued, the day is blocked
          Object.assign(snapshots[0]!, { market_price: null, market_value: null, market_value_local: null, valuation_status: 'FAILED' });
        }
      }
      days[i]!.snapshots.push(...snapshots);
      if (declare) days[i]!.manifests.push({ portfolio_id: spec.id, aggregation_date: date, expected_count: expected });
    }
  }

  const count = (k: 'snapshots' | 'cashflows' | 'fx' | 'manifests') => days.reduce((n, d) => n + d[k].length, 0);
  return {
    portfolios: specs.map((s) => ({ portfolio_id: s.id, base_currency: s.base, open_date: dates[0]!, close_date: null })),
    instruments: INSTRUMENTS.map((x) => ({ security_id: x.id, currency: x.currency, name: x.name })),
    days,
    counts: { snapshots: count('snapshots'), cashflows: count('cashflows'), fx: count('fx'), manifests: count('manifests') },
  };
}
