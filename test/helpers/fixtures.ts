// Small typed writers for the contract tables, used by tests to state inputs the way a producer
// would (plain INSERTs naming only contract columns).
import type { Sql } from '../../src/db.js';

export interface SnapshotInput {
  portfolio_id: string;
  security_id: string;
  date: string;
  epoch?: number;
  quantity: string | number;
  cost_basis?: string | number | null;
  cost_basis_local?: string | number | null;
  market_price?: string | number | null;
  market_value: string | number | null;
  market_value_local: string | number | null;
  valuation_status?: string;
}

export interface CashflowInput {
  transaction_id: string;
  portfolio_id: string;
  security_id: string | null;
  cashflow_date: string;
  epoch?: number;
  amount: string | number;
  currency: string;
  classification: string;
  timing: string;
  is_position_flow: boolean;
  is_portfolio_flow: boolean;
}

const s = (v: string | number | null | undefined): string | null => (v === null || v === undefined ? null : String(v));

export async function insertPortfolio(sql: Sql, portfolioId: string, baseCurrency: string, openDate = '2020-01-01'): Promise<void> {
  await sql`insert into portfolios (portfolio_id, base_currency, open_date) values (${portfolioId}, ${baseCurrency}, ${openDate})`;
}

export async function insertInstrument(sql: Sql, securityId: string, currency: string, name: string | null = null): Promise<void> {
  await sql`insert into instruments (security_id, currency, name) values (${securityId}, ${currency}, ${name})`;
}

export async function insertFx(sql: Sql, from: string, to: string, date: string, rate: string | number): Promise<void> {
  await sql`insert into fx_rates (from_currency, to_currency, rate_date, rate) values (${from}, ${to}, ${date}, ${String(rate)})`;
}

export async function insertSnapshot(sql: Sql, x: SnapshotInput): Promise<void> {
  await sql`
    insert into daily_position_snapshots
      (portfolio_id, security_id, date, epoch, quantity, cost_basis, cost_basis_local, market_price,
       market_value, market_value_local, valuation_status)
    values (${x.portfolio_id}, ${x.security_id}, ${x.date}, ${x.epoch ?? 0}, ${String(x.quantity)},
            ${s(x.cost_basis)}, ${s(x.cost_basis_local)}, ${s(x.market_price)}, ${s(x.market_value)},
            ${s(x.market_value_local)}, ${x.valuation_status ?? 'VALUED_CURRENT'})`;
}

export async function insertCashflow(sql: Sql, x: CashflowInput): Promise<void> {
  await sql`
    insert into cashflows
      (transaction_id, portfolio_id, security_id, cashflow_date, epoch, amount, currency,
       classification, timing, is_position_flow, is_portfolio_flow)
    values (${x.transaction_id}, ${x.portfolio_id}, ${x.security_id}, ${x.cashflow_date}, ${x.epoch ?? 0},
            ${String(x.amount)}, ${x.currency}, ${x.classification}, ${x.timing}, ${x.is_position_flow},
            ${x.is_portfolio_flow})`;
}

export async function declare(sql: Sql, portfolioId: string, date: string, expected: number): Promise<void> {
  await sql`
    insert into daily_aggregation_manifest (portfolio_id, aggregation_date, expected_count)
    values (${portfolioId}, ${date}, ${expected})
    on conflict (portfolio_id, aggregation_date) do update set expected_count = excluded.expected_count`;
}

/**
 * Run the engine's job for one portfolio directly, as the drain does: reference changes fanned
 * out first, then one REPEATABLE READ transaction.
 */
export async function computePortfolio(sql: Sql, portfolioId: string): Promise<Record<string, unknown>> {
  await sql.begin('isolation level repeatable read', (tx) => tx`select portfolio_timeseries_engine.fan_out()`);
  return sql.begin('isolation level repeatable read', async (tx) => {
    const [row] = await tx<{ r: Record<string, unknown> }[]>`
      select portfolio_timeseries_engine.compute_portfolio(${portfolioId}) as r`;
    return row!.r;
  });
}

/** Portfolio rows as plain strings (numeric text as PostgreSQL prints it), for exact comparison. */
export async function portfolioRows(sql: Sql, portfolioId: string) {
  return sql<Record<string, string | number>[]>`
    select date::text, epoch, bod_market_value::text, bod_cashflow::text, eod_cashflow::text,
           eod_market_value::text, fees::text, position_count
    from portfolio_timeseries where portfolio_id = ${portfolioId} order by date`;
}

export async function positionRows(sql: Sql, portfolioId: string) {
  return sql<Record<string, string | number>[]>`
    select security_id, date::text, epoch, bod_market_value::text, bod_cashflow_position::text,
           eod_cashflow_position::text, bod_cashflow_portfolio::text, eod_cashflow_portfolio::text,
           eod_market_value::text, fees::text, quantity::text, cost::text
    from position_timeseries where portfolio_id = ${portfolioId} order by date, security_id`;
}
