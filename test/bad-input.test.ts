// Bad input that can be refused at write time is refused with an error whose text names the
// row's key, and nothing of the statement is written (docs/contract.md, contract section 3,
// "Refused at write time").
import t from 'tap';
import { freshDatabase } from './helpers/db.js';
import { insertPortfolio } from './helpers/fixtures.js';
import type { Sql } from '../src/db.js';

async function refused(
  t: Tap, sql: Sql, what: string, statement: () => Promise<unknown>, mentions: string[], table: string,
): Promise<void> {
  const before = await count(sql, table);
  try {
    await statement();
    t.fail(`${what}: accepted`);
  } catch (error) {
    const message = (error as Error).message;
    for (const m of mentions) t.match(message, m, `${what}: the error names ${m} (${message})`);
  }
  t.equal(await count(sql, table), before, `${what}: nothing written to ${table}`);
}
type Tap = { match(a: string, b: string, m: string): void; fail(m: string): void; equal(a: unknown, b: unknown, m: string): void };

async function count(sql: Sql, table: string): Promise<number> {
  const [row] = await sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${table}`);
  return row!.n;
}

t.test('refused inputs name their row', async (t) => {
  const { sql } = await freshDatabase(t);
  await insertPortfolio(sql, 'P1', 'USD');

  await refused(t, sql, 'cash flow timing', () => sql`
    insert into cashflows (transaction_id, portfolio_id, security_id, cashflow_date, amount, currency,
                           classification, timing, is_position_flow, is_portfolio_flow)
    values ('OK1', 'P1', 'S1', '2025-01-02', -1, 'USD', 'EXPENSE', 'EOD', true, true),
           ('T-BAD', 'P1', 'S1', '2025-01-02', -1, 'USD', 'EXPENSE', 'NOON', true, true)`,
  ['T-BAD', 'P1', 'S1', '2025-01-02', 'NOON'], 'cashflows');

  await refused(t, sql, 'cash flow currency', () => sql`
    insert into cashflows (transaction_id, portfolio_id, security_id, cashflow_date, amount, currency,
                           classification, timing, is_position_flow, is_portfolio_flow)
    values ('T-CCY', 'P1', null, '2025-01-03', 5, 'usd', 'CASHFLOW_IN', 'BOD', false, true)`,
  ['T-CCY', 'P1', '2025-01-03', 'usd'], 'cashflows');

  await refused(t, sql, 'fx rate <= 0', () => sql`
    insert into fx_rates values ('CHF', 'USD', '2025-01-02', 1.1), ('GBP', 'USD', '2025-01-05', 0)`,
  ['GBP', 'USD', '2025-01-05'], 'fx_rates');

  await sql`insert into fx_rates values ('EUR', 'USD', '2025-01-02', 1.1)`;
  await refused(t, sql, 'fx rate negative via update', () => sql`
    update fx_rates set rate = -2 where from_currency = 'EUR'`, ['EUR', 'USD', '2025-01-02'], 'fx_rates');
  const [eur] = await sql<{ rate: { toFixed(): string } }[]>`select rate from fx_rates where from_currency = 'EUR'`;
  t.equal(eur!.rate.toFixed(), '1.1', 'the refused update left the rate unchanged');

  await refused(t, sql, 'fx from currency code', () => sql`
    insert into fx_rates values ('EURO', 'USD', '2025-01-02', 1.1)`, ['EURO', 'USD', '2025-01-02'], 'fx_rates');

  await refused(t, sql, 'fx to currency code', () => sql`
    insert into fx_rates values ('EUR', 'US', '2025-01-02', 1.1)`, ['EUR', 'US', '2025-01-02'], 'fx_rates');

  await refused(t, sql, 'negative expected_count', () => sql`
    insert into daily_aggregation_manifest values ('P1', '2025-01-02', -1)`,
  ['P1', '2025-01-02', '-1'], 'daily_aggregation_manifest');

  await refused(t, sql, 'portfolio base currency', () => sql`
    insert into portfolios (portfolio_id, base_currency, open_date) values ('P-BAD', 'Usd', '2025-01-01')`,
  ['P-BAD', 'Usd'], 'portfolios');

  await refused(t, sql, 'instrument currency', () => sql`
    insert into instruments (security_id, currency) values ('S-BAD', '12A')`, ['S-BAD', '12A'], 'instruments');

  await refused(t, sql, 'snapshot epoch above current', () => sql`
    insert into daily_position_snapshots (portfolio_id, security_id, date, epoch, quantity, market_value,
                                          market_value_local, valuation_status)
    values ('P1', 'S1', '2025-01-02', 0, 1, 1, 1, 'VALUED_CURRENT'),
           ('P1', 'S2', '2025-01-02', 3, 1, 1, 1, 'VALUED_CURRENT')`,
  ['P1', 'S2', '2025-01-02', 'epoch 3'], 'daily_position_snapshots');

  await refused(t, sql, 'snapshot valuation status', () => sql`
    insert into daily_position_snapshots (portfolio_id, security_id, date, quantity, market_value,
                                          market_value_local, valuation_status)
    values ('P1', 'S3', '2025-01-04', 1, 1, 1, 'PRICED')`,
  ['P1', 'S3', '2025-01-04', 'PRICED'], 'daily_position_snapshots');

  // None of the refused statements left engine state behind either.
  const [state] = await sql<{ days: number; keys: number }[]>`
    select (select count(*)::int from portfolio_timeseries_engine.portfolio_day) as days,
           (select count(*)::int from portfolio_timeseries_engine.position_key) as keys`;
  t.same(state, { days: 0, keys: 0 }, 'no readiness state from refused statements');
});

t.test('epoch rules on position_state', async (t) => {
  const { sql } = await freshDatabase(t);
  await sql`insert into position_state (portfolio_id, security_id, epoch) values ('P1', 'S1', 2)`;
  await refused(t, sql, 'lowering an epoch', () => sql`
    update position_state set epoch = 1, watermark_date = '2025-01-01' where security_id = 'S1'`,
  ['P1', 'S1', 'lowering'], 'position_state');
  await refused(t, sql, 'raising without a watermark', () => sql`
    update position_state set epoch = 3, watermark_date = null where security_id = 'S1'`,
  ['P1', 'S1', 'watermark'], 'position_state');
  await refused(t, sql, 'deleting', () => sql`delete from position_state where security_id = 'S1'`,
    ['P1', 'S1'], 'position_state');
  const [row] = await sql<{ epoch: number }[]>`select epoch from position_state where security_id = 'S1'`;
  t.equal(row!.epoch, 2, 'epoch unchanged');
});
