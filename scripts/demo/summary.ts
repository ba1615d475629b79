// Per-portfolio figures from the engine's output rows: what the demo prints and the report shows.
// Every figure is a sum of stored values (Decimal), nothing is estimated.
import { Decimal, type DayState, type DayStatus, type PortfolioTimeseriesRow } from '../../src/index.js';

export interface PortfolioSummary {
  portfolioId: string;
  baseCurrency: string;
  /** Days by state (every day `status` knows of, declared or not). */
  states: Partial<Record<DayState, number>>;
  days: number;
  firstDate: string | null;
  lastDate: string | null;
  /** BOD market value of the first computed day (0 for a portfolio's first day). */
  startValue: Decimal;
  /** EOD market value of the last computed day. */
  endValue: Decimal;
  /** Deposits minus withdrawals: BOD + EOD cash flows with the fees taken out again. */
  externalFlows: Decimal;
  fees: Decimal;
  /** endValue - startValue - externalFlows: the investment result after fees. */
  resultAfterFees: Decimal;
}

export function summarise(portfolioId: string, baseCurrency: string, rows: PortfolioTimeseriesRow[], days: DayStatus[]): PortfolioSummary {
  const zero = new Decimal(0);
  const sum = (f: (r: PortfolioTimeseriesRow) => Decimal) => rows.reduce((s, r) => s.plus(f(r)), zero);
  const fees = sum((r) => r.fees);
  // A fee is an EOD outflow and also counted in `fees` (contract section 3): adding the fees back
  // leaves the deposits and withdrawals.
  const externalFlows = sum((r) => r.bodCashflow.plus(r.eodCashflow)).plus(fees);
  const startValue = rows[0]?.bodMarketValue ?? zero;
  const endValue = rows.at(-1)?.eodMarketValue ?? zero;
  const states: Partial<Record<DayState, number>> = {};
  for (const d of days) states[d.state] = (states[d.state] ?? 0) + 1;
  return {
    portfolioId,
    baseCurrency,
    states,
    days: days.length,
    firstDate: rows[0]?.date ?? null,
    lastDate: rows.at(-1)?.date ?? null,
    startValue,
    endValue,
    externalFlows,
    fees,
    resultAfterFees: endValue.minus(startValue).minus(externalFlows),
  };
}

/** 1234567.891 -> "1,234,567.89" (half away from zero). */
export function formatMoney(value: Decimal): string {
  const [int, frac] = value.toFixed(2).split('.') as [string, string];
  const sign = int.startsWith('-') ? '-' : '';
  return `${sign}${int.replace('-', '').replace(/\B(?=(\d{3})+(?!\d))/g, ',')}.${frac}`;
}

export function summaryTable(summaries: PortfolioSummary[]): string {
  const header = ['portfolio', 'base', 'days current', 'end value', 'deposits - withdrawals', 'fees', 'result after fees', 'not current'];
  const rows = summaries.map((s) => [
    s.portfolioId,
    s.baseCurrency,
    `${s.states.current ?? 0} of ${s.days}`,
    formatMoney(s.endValue),
    formatMoney(s.externalFlows),
    formatMoney(s.fees),
    formatMoney(s.resultAfterFees),
    Object.entries(s.states).filter(([state]) => state !== 'current').map(([state, n]) => `${n} ${state}`).join(', ') || '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const numeric = new Set([3, 4, 5, 6]);
  const fmt = (cells: string[]) => cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)].join('\n');
}
