// An independent model of the read side (issue #10 and docs/methodology.md "Returns and risk"),
// written from the formulas, not from sql/13_returns.sql. It is the oracle of the
// randomised tests. Arithmetic is decimal.js at 60 significant digits with no intermediate
// rounding to a fixed number of places (the SQL rounds to 30): agreement to 1e-12 shows both
// compute the same formulas. The XIRR here is found differently from the SQL (a float scan for
// sign changes, then plain bisection in Decimal), so the two solvers check each other.
import { Decimal } from '../../src/decimal.js';

export type Basis = 'GROSS' | 'NET';

/** One portfolio_timeseries row (base currency), as the model's input. */
export interface PortfolioDay {
  date: string;
  bod: Decimal;
  bodCf: Decimal;
  eodCf: Decimal;
  eod: Decimal;
  fees: Decimal;
}

/** One position_timeseries row (local currency): flows are the position's cash flows as stored. */
export interface PositionDay {
  date: string;
  bod: Decimal;
  bodCfPosition: Decimal;
  eodCfPosition: Decimal;
  eod: Decimal;
}

export interface ModelDaily {
  date: string;
  r: Decimal;
  cumulative: Decimal;
  zeroBase: boolean;
}

const ONE = new Decimal(1);
const ZERO = new Decimal(0);

/** Calendar days from a to b (ISO dates), b - a. */
export function dayDiff(a: string, b: string): number {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86_400_000);
}

/** r = (EOD - BOD - BOD_CF - EOD_CF [- fees]) / (BOD + BOD_CF); 0 and flagged when the base is 0. */
export function dailyReturn(d: PortfolioDay, basis: Basis): { r: Decimal; zeroBase: boolean } {
  let gain = d.eod.minus(d.bod).minus(d.bodCf).minus(d.eodCf);
  if (basis === 'NET') gain = gain.minus(d.fees);
  const base = d.bod.plus(d.bodCf);
  return base.isZero() ? { r: ZERO, zeroBase: true } : { r: gain.div(base), zeroBase: false };
}

/** The position's flows turned to its own side (a BUY, stored negative, adds to the position). */
export function positionDailyReturn(d: PositionDay): { r: Decimal; zeroBase: boolean } {
  const inBod = d.bodCfPosition.neg();
  const inEod = d.eodCfPosition.neg();
  const gain = d.eod.minus(d.bod).minus(inBod).minus(inEod);
  const base = d.bod.plus(inBod);
  return base.isZero() ? { r: ZERO, zeroBase: true } : { r: gain.div(base), zeroBase: false };
}

/** Chain daily returns: cumulative = product of (1 + r) - 1, each day once. */
export function chain(days: { date: string; r: Decimal; zeroBase: boolean }[]): ModelDaily[] {
  let wealth = ONE;
  return days.map((d) => {
    wealth = wealth.times(ONE.plus(d.r));
    return { ...d, cumulative: wealth.minus(1) };
  });
}

/** (1 + c)^(365.25 / days) - 1, only when days > 365 (and 1 + c >= 0), else null. */
export function annualise(c: Decimal | null, days: number): Decimal | null {
  if (c === null || days <= 365 || ONE.plus(c).isNeg()) return null;
  return ONE.plus(c).pow(new Decimal('365.25').div(days)).minus(1);
}

export interface ModelTwr {
  days: number;
  daily: ModelDaily[];
  twr: Decimal | null;
  twrAnnualised: Decimal | null;
  zeroBaseDays: string[];
}

/** TWR of the rows of a range [from, to] (rows: the usable days, in date order). */
export function twr(rows: PortfolioDay[], basis: Basis, from: string, to: string): ModelTwr {
  const days = dayDiff(from, to) + 1;
  const daily = chain(rows.map((d) => ({ date: d.date, ...dailyReturn(d, basis) })));
  const c = daily.length ? daily[daily.length - 1]!.cumulative : null;
  return { days, daily, twr: c, twrAnnualised: annualise(c, days), zeroBaseDays: daily.filter((d) => d.zeroBase).map((d) => d.date) };
}

// ---------- XIRR ----------

export interface Flow {
  /** whole days from the range's start */
  day: number;
  amount: Decimal;
}

/** Net present value at annual rate r with time = day / 365 (Decimal, 60 digits). */
export function npv(flows: Flow[], rate: Decimal): Decimal {
  const base = ONE.plus(rate);
  return flows.reduce((s, f) => s.plus(f.amount.div(base.pow(new Decimal(f.day).div(365)))), ZERO);
}

function npvLog(flows: Flow[], y: Decimal): Decimal {
  // y = ln(1 + r); (1 + r)^(-day/365) = u^(-day) with u = exp(y / 365): one exp per evaluation.
  const u = y.div(365).exp();
  return flows.reduce((s, f) => s.plus(f.amount.div(u.pow(f.day))), ZERO);
}

export interface ModelXirr {
  rate: Decimal | null;
  reason: string | null;
  /** every root found on the scan (rates), nearest to 0% first */
  roots: Decimal[];
}

/**
 * Amounts on one day summed; no positive or no negative amount: no rate. Otherwise scan
 * y = ln(1 + r) on a log-spaced grid in floating point for sign changes of the NPV, and bisect
 * each in Decimal to 1e-40. The rate reported is the root nearest to 0%.
 */
export function xirr(flowsIn: Flow[]): ModelXirr {
  const byDay = new Map<number, Decimal>();
  for (const f of flowsIn) byDay.set(f.day, (byDay.get(f.day) ?? ZERO).plus(f.amount));
  const flows = [...byDay].filter(([, a]) => !a.isZero()).map(([day, amount]) => ({ day, amount })).sort((a, b) => a.day - b.day);
  if (!flows.some((f) => f.amount.isPos()) || !flows.some((f) => f.amount.isNeg())) {
    return { rate: null, reason: 'no sign change in the cash flows', roots: [] };
  }
  const span = flows[flows.length - 1]!.day - flows[0]!.day;
  const t0 = flows[0]!.day;
  const fl = flows.map((f) => ({ t: (f.day - t0) / 365, a: f.amount.toNumber() }));
  const fNum = (y: number): number => {
    // scaled by the largest exponent so that it cannot overflow; the sign is what matters
    const ex = fl.map((f) => -y * f.t);
    const m = Math.max(...ex);
    return fl.reduce((s, f, i) => s + f.a * Math.exp(ex[i]! - m), 0);
  };
  // y grid: 0 and +-10^e for e in [-5, log10(ymax)] in steps of 0.005, then +-ymax itself.
  // ymax: a growth factor of 10^30 over the flows' span, where the methodology says the search
  // stops and no rate is reported (a root beyond it is not an answer: with the bound at 10^32
  // the model found one there for SEED=216434003 and the solver rightly said none).
  const ymax = (30 * Math.LN10 * 365) / Math.max(span, 1);
  const grid: number[] = [0, ymax, -ymax];
  for (let e = -5; 10 ** e < ymax; e += 0.005) grid.push(10 ** e, -(10 ** e));
  grid.sort((a, b) => a - b);
  const roots: Decimal[] = [];
  const shifted = flows.map((f) => ({ day: f.day - t0, amount: f.amount }));
  let prev = fNum(grid[0]!);
  for (let i = 1; i < grid.length; i++) {
    const cur = fNum(grid[i]!);
    if (cur === 0 || Math.sign(cur) !== Math.sign(prev)) {
      let lo = new Decimal(grid[i - 1]!);
      let hi = new Decimal(grid[i]!);
      let flo = npvLog(shifted, lo);
      if (flo.isZero()) {
        roots.push(lo.exp().minus(1));
      } else {
        for (let k = 0; k < 400 && hi.minus(lo).abs().gt('1e-40'); k++) {
          const mid = lo.plus(hi).div(2);
          const fm = npvLog(shifted, mid);
          if (fm.isZero()) { lo = mid; hi = mid; break; }
          if (fm.isNeg() === flo.isNeg()) { lo = mid; flo = fm; } else { hi = mid; }
        }
        roots.push(lo.plus(hi).div(2).exp().minus(1));
      }
    }
    prev = cur;
  }
  if (roots.length === 0) return { rate: null, reason: 'no root', roots };
  roots.sort((a, b) => ONE.plus(a).ln().abs().cmp(ONE.plus(b).ln().abs()));
  return { rate: roots[0]!, reason: null, roots };
}

/**
 * The investor's amounts of a range, per the documented day split: the starting value (first
 * usable day's BOD) at day 0, a day's BOD flows at its start (d - from), its EOD flows at its end
 * (d - from + 1; NET: fees are not external, so they are added back), the ending value (last
 * usable day's EOD) at the range's end (days).
 */
export function mwrFlows(rows: PortfolioDay[], basis: Basis, from: string, to: string): Flow[] {
  if (rows.length === 0) return [];
  const days = dayDiff(from, to) + 1;
  const flows: Flow[] = [{ day: 0, amount: rows[0]!.bod.neg() }];
  for (const d of rows) {
    const k = dayDiff(from, d.date);
    flows.push({ day: k, amount: d.bodCf.neg() });
    flows.push({ day: k + 1, amount: (basis === 'NET' ? d.eodCf.plus(d.fees) : d.eodCf).neg() });
  }
  flows.push({ day: days, amount: rows[rows.length - 1]!.eod });
  return flows;
}

export interface ModelMwr {
  days: number;
  mwr: Decimal | null;
  mwrAnnualised: Decimal | null;
  mwrPeriod: Decimal | null;
  reason: string | null;
  roots: Decimal[];
}

export function mwr(rows: PortfolioDay[], basis: Basis, from: string, to: string): ModelMwr {
  const days = dayDiff(from, to) + 1;
  if (rows.length === 0) return { days, mwr: null, mwrAnnualised: null, mwrPeriod: null, reason: 'no usable day in the range', roots: [] };
  const x = xirr(mwrFlows(rows, basis, from, to));
  const rate = x.rate;
  return {
    days,
    mwr: rate,
    mwrAnnualised: rate !== null && days >= 365 ? rate : null,
    mwrPeriod: rate !== null && days < 365 ? ONE.plus(rate).pow(new Decimal(days).div(365)).minus(1) : null,
    reason: x.reason,
    roots: x.roots,
  };
}

// ---------- risk ----------

export interface ModelRisk {
  n: number;
  volatility: Decimal | null;
  maxDrawdown: Decimal | null;
  drawdownPeak: string | null;
  drawdownTrough: string | null;
  sharpe: Decimal | null;
  sortino: Decimal | null;
}

const mean = (xs: Decimal[]): Decimal => xs.reduce((s, x) => s.plus(x), ZERO).div(xs.length);
function sampleStd(xs: Decimal[]): Decimal {
  const m = mean(xs);
  return xs.reduce((s, x) => s.plus(x.minus(m).pow(2)), ZERO).div(xs.length - 1).sqrt();
}

function dayBefore(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
}

/**
 * Volatility = sample std x sqrt(252); drawdown on the wealth index (1 before the first day); Sharpe
 * and Sortino on excess = r - rf, rf = (1 + R)^(1/252) - 1.
 */
export function risk(daily: { date: string; r: Decimal }[], riskFree: Decimal = ZERO): ModelRisk {
  const n = daily.length;
  const sqrt252 = new Decimal(252).sqrt();
  const rf = ONE.plus(riskFree).pow(ONE.div(252)).minus(1);
  const rs = daily.map((d) => d.r);
  const ex = rs.map((r) => r.minus(rf));
  // Drawdown: walk the wealth index, remembering the latest date at the running peak.
  let wealth = ONE;
  let peak = ONE;
  let peakDate = n ? dayBefore(daily[0]!.date) : null;
  let mdd = ZERO;
  let mddPeak: string | null = null;
  let mddTrough: string | null = null;
  for (const d of daily) {
    wealth = wealth.times(ONE.plus(d.r));
    if (wealth.gte(peak)) { peak = wealth; peakDate = d.date; }
    const dd = wealth.div(peak).minus(1);
    if (dd.lt(mdd)) { mdd = dd; mddPeak = peakDate; mddTrough = d.date; }
  }
  const sd = n >= 2 ? sampleStd(rs) : null;
  const sdx = n >= 2 ? sampleStd(ex) : null;
  const downside = ex.reduce((s, x) => (x.isNeg() ? s.plus(x.pow(2)) : s), ZERO);
  return {
    n,
    volatility: sd === null ? null : sd.times(sqrt252),
    maxDrawdown: n ? mdd : null,
    drawdownPeak: mddPeak,
    drawdownTrough: mddTrough,
    sharpe: sdx === null || sdx.isZero() ? null : mean(ex).div(sdx).times(sqrt252),
    sortino: n === 0 || downside.isZero() ? null : mean(ex).div(downside.div(n).sqrt()).times(sqrt252),
  };
}
