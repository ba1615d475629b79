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
