// Typed readers of the two output tables. Rows are the last complete ones (docs/contract.md section 2).
import type { Sql } from './db.js';
import type { DateRange, PortfolioTimeseriesRow, PositionTimeseriesRow } from './types.js';

export async function readPortfolioTimeseries(
  sql: Sql,
  portfolioId: string,
  range: DateRange = {},
): Promise<PortfolioTimeseriesRow[]> {
  const rows = await sql`
    select portfolio_id, date, epoch, bod_market_value, bod_cashflow, eod_cashflow,
           eod_market_value, fees, position_count, created_at, updated_at
    from public.portfolio_timeseries
    where portfolio_id = ${portfolioId}
      and date >= ${range.from ?? '-infinity'}::date and date <= ${range.to ?? 'infinity'}::date
    order by date`;
  return rows.map((r) => ({
    portfolioId: r.portfolio_id,
    date: r.date,
    epoch: r.epoch,
    bodMarketValue: r.bod_market_value,
    bodCashflow: r.bod_cashflow,
    eodCashflow: r.eod_cashflow,
    eodMarketValue: r.eod_market_value,
    fees: r.fees,
    positionCount: r.position_count,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }));
}

export async function readPositionTimeseries(
  sql: Sql,
  portfolioId: string,
  options: DateRange & { securityId?: string } = {},
): Promise<PositionTimeseriesRow[]> {
  const rows = await sql`
    select portfolio_id, security_id, date, epoch, bod_market_value, bod_cashflow_position,
           eod_cashflow_position, bod_cashflow_portfolio, eod_cashflow_portfolio, eod_market_value,
           fees, quantity, cost, created_at, updated_at
    from public.position_timeseries
    where portfolio_id = ${portfolioId}
      and (${options.securityId ?? null}::text is null or security_id = ${options.securityId ?? null})
      and date >= ${options.from ?? '-infinity'}::date and date <= ${options.to ?? 'infinity'}::date
    order by date, security_id`;
  return rows.map((r) => ({
    portfolioId: r.portfolio_id,
    securityId: r.security_id,
    date: r.date,
    epoch: r.epoch,
    bodMarketValue: r.bod_market_value,
    bodCashflowPosition: r.bod_cashflow_position,
    eodCashflowPosition: r.eod_cashflow_position,
    bodCashflowPortfolio: r.bod_cashflow_portfolio,
    eodCashflowPortfolio: r.eod_cashflow_portfolio,
    eodMarketValue: r.eod_market_value,
    fees: r.fees,
    quantity: r.quantity,
    cost: r.cost,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }));
}
