// Exact comparison of engine rows with the reference model's rows, shared by the randomised tests.
import { Decimal } from '../../src/decimal.js';

export const POSITION_COLUMNS = ['epoch', 'bod_market_value', 'bod_cashflow_position', 'eod_cashflow_position', 'bod_cashflow_portfolio',
  'eod_cashflow_portfolio', 'eod_market_value', 'fees', 'quantity', 'cost'] as const;
export const PORTFOLIO_COLUMNS = ['epoch', 'bod_market_value', 'bod_cashflow', 'eod_cashflow', 'eod_market_value', 'fees', 'position_count'] as const;

/** Every value as text: numerics with their 10 stored decimals, so comparison is exact. */
export const cell = (v: unknown): string => (v instanceof Decimal ? v.toFixed(10) : String(v));
export const rowText = (r: Record<string, unknown>, cols: readonly string[]) => cols.map((c) => `${c}=${cell(r[c])}`).join(' ');

/** Compare two keyed row sets; returns human-readable differences. */
export function diff(expected: Record<string, unknown>[], actual: Record<string, unknown>[], key: (r: Record<string, unknown>) => string, cols: readonly string[]): string[] {
  const want = new Map(expected.map((r) => [key(r), rowText(r, cols)]));
  const got = new Map(actual.map((r) => [key(r), rowText(r, cols)]));
  const out: string[] = [];
  for (const [k, v] of want) {
    if (!got.has(k)) out.push(`missing ${k}: ${v}`);
    else if (got.get(k) !== v) out.push(`wrong ${k}:\n      expected ${v}\n      actual   ${got.get(k)}`);
  }
  for (const [k, v] of got) if (!want.has(k)) out.push(`extra ${k}: ${v}`);
  return out;
}

export const posKey = (r: Record<string, unknown>) => `${r.portfolio_id}/${r.security_id}/${r.date}`;
export const pfKey = (r: Record<string, unknown>) => `${r.portfolio_id}/${r.date}`;
