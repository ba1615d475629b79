import { Decimal } from '../../src/decimal.js';

/** Normalise a numeric (string, number or Decimal) for exact comparison: '5720.0000000000' -> '5720'. */
export const n = (v: unknown): string => new Decimal(String(v)).toFixed();

/** Normalise every numeric-looking field of a row. */
export function normalise(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    out[k] = typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v) && k !== 'date' ? n(v) : v instanceof Decimal ? v.toFixed() : v;
  }
  return out;
}

/** A portfolio row as portfolioRows() + normalise() returns it, with zero defaults. */
export function prow(date: string, v: Partial<Record<string, string | number>>): Record<string, unknown> {
  return {
    date, epoch: 0, bod_market_value: '0', bod_cashflow: '0', eod_cashflow: '0', eod_market_value: '0', fees: '0',
    position_count: 1, ...v,
  };
}

/** A position row as positionRows() + normalise() returns it, with zero defaults. */
export function posrow(security_id: string, date: string, v: Partial<Record<string, string | number>>): Record<string, unknown> {
  return {
    security_id, date, epoch: 0, bod_market_value: '0', bod_cashflow_position: '0', eod_cashflow_position: '0',
    bod_cashflow_portfolio: '0', eod_cashflow_portfolio: '0', eod_market_value: '0', fees: '0', quantity: '0', cost: '0',
    ...v,
  };
}
