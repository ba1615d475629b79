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

  // None of the refused statements left engine state behind either: the only changes recorded
  // are those of the accepted statements (portfolio P1, the EUR rate).
  const [state] = await sql<{ changes: string[]; references: number }[]>`
    select (select coalesce(array_agg(portfolio_id || ':' || kind::text order by portfolio_id), '{}')
            from portfolio_timeseries_engine.change) as changes,
           (select count(*)::int from portfolio_timeseries_engine.reference_change) as references`;
  t.same(state, { changes: ['P1:P'], references: 1 }, 'no change recorded by refused statements');
});

t.test('non-finite numbers and dates, empty identifiers and negative epochs are refused naming the row', async (t) => {
  const { sql } = await freshDatabase(t);
  const snapshot = (id: string, date: string, epoch: number, values: Record<string, string>) => sql.unsafe(`
    insert into daily_position_snapshots (portfolio_id, security_id, date, epoch, quantity, cost_basis_local,
                                          market_value, market_value_local, valuation_status)
    values ('P1', 'OK', '2025-01-02', 0, 1, 1, 1, 1, 'VALUED_CURRENT'),
           ('P1', '${id}', '${date}', ${epoch}, ${values.quantity ?? '1'}, ${values.cost_basis_local ?? '1'},
            ${values.market_value ?? '1'}, ${values.market_value_local ?? '1'}, 'VALUED_CURRENT')`);
  for (const column of ['quantity', 'cost_basis_local', 'market_value', 'market_value_local']) {
    await refused(t, sql, `snapshot ${column} NaN`, () => snapshot('S-NAN', '2025-01-03', 0, { [column]: "'NaN'" }),
      ['S-NAN', '2025-01-03', column, 'NaN'], 'daily_position_snapshots');
  }
  await refused(t, sql, 'snapshot negative epoch', () => snapshot('S-NEG', '2025-01-03', -1, {}),
    ['S-NEG', '2025-01-03', 'epoch must be >= 0'], 'daily_position_snapshots');
  await refused(t, sql, 'snapshot infinite date', () => snapshot('S-INF', 'infinity', 0, {}),
    ['S-INF', 'infinity', 'finite'], 'daily_position_snapshots');
  await refused(t, sql, 'snapshot empty portfolio id', () => sql`
    insert into daily_position_snapshots (portfolio_id, security_id, date, quantity, market_value, market_value_local,
                                          valuation_status)
    values ('', 'S1', '2025-01-02', 1, 1, 1, 'VALUED_CURRENT')`, ["''", 'S1', '2025-01-02', 'empty'], 'daily_position_snapshots');
  // numeric(30,10) itself refuses infinities before any check runs (COPY names the line and column).
  await refused(t, sql, 'snapshot infinity', () => snapshot('S-INFV', '2025-01-03', 0, { market_value: "'Infinity'" }),
    ['numeric field overflow'], 'daily_position_snapshots');

  await refused(t, sql, 'cash flow amount NaN', () => sql`
    insert into cashflows (transaction_id, portfolio_id, security_id, cashflow_date, amount, currency,
                           classification, timing, is_position_flow, is_portfolio_flow)
    values ('T-NAN', 'P1', null, '2025-01-02', 'NaN', 'USD', 'CASHFLOW_IN', 'BOD', false, true)`,
  ['T-NAN', 'P1', '2025-01-02', 'amount', 'NaN'], 'cashflows');
  await refused(t, sql, 'cash flow infinite date', () => sql`
    insert into cashflows (transaction_id, portfolio_id, security_id, cashflow_date, amount, currency,
                           classification, timing, is_position_flow, is_portfolio_flow)
    values ('T-INF', 'P1', null, '-infinity', 1, 'USD', 'CASHFLOW_IN', 'BOD', false, true)`,
  ['T-INF', 'P1', '-infinity', 'finite'], 'cashflows');
  await refused(t, sql, 'cash flow empty portfolio id', () => sql`
    insert into cashflows (transaction_id, portfolio_id, security_id, cashflow_date, amount, currency,
                           classification, timing, is_position_flow, is_portfolio_flow)
    values ('T-EMPTY', '', null, '2025-01-02', 1, 'USD', 'CASHFLOW_IN', 'BOD', false, true)`,
  ['T-EMPTY', "''", 'empty'], 'cashflows');

  await refused(t, sql, 'fx rate NaN', () => sql`
    insert into fx_rates values ('EUR', 'USD', '2025-01-02', 'NaN')`, ['EUR', 'USD', '2025-01-02', 'NaN'], 'fx_rates');
  await refused(t, sql, 'fx rate infinite date', () => sql`
    insert into fx_rates values ('EUR', 'USD', 'infinity', 1.1)`, ['EUR', 'USD', 'infinity', 'finite'], 'fx_rates');

  await refused(t, sql, 'manifest infinite date', () => sql`
    insert into daily_aggregation_manifest values ('P1', 'infinity', 1)`, ['P1', 'infinity', 'finite'], 'daily_aggregation_manifest');
  await refused(t, sql, 'manifest empty portfolio id', () => sql`
    insert into daily_aggregation_manifest values ('', '2025-01-02', 1)`, ["''", '2025-01-02', 'empty'], 'daily_aggregation_manifest');

  await refused(t, sql, 'portfolio empty id', () => sql`
    insert into portfolios (portfolio_id, base_currency, open_date) values ('', 'USD', '2025-01-01')`,
  ["''", 'empty'], 'portfolios');
  await refused(t, sql, 'portfolio infinite open date', () => sql`
    insert into portfolios (portfolio_id, base_currency, open_date) values ('P-INF', 'USD', '-infinity')`,
  ['P-INF', 'finite'], 'portfolios');
  await refused(t, sql, 'instrument empty id', () => sql`
    insert into instruments (security_id, currency) values ('', 'USD')`, ["''", 'empty'], 'instruments');

  await refused(t, sql, 'position state watermark at the last date', () => sql`
    insert into position_state (portfolio_id, security_id, epoch, watermark_date) values ('P1', 'S1', 0, '5874897-12-31')`,
  ['P1', 'S1', '5874897-12-31'], 'position_state');
  await refused(t, sql, 'position state infinite watermark', () => sql`
    insert into position_state (portfolio_id, security_id, epoch, watermark_date) values ('P1', 'S1', 0, 'infinity')`,
  ['P1', 'S1', 'infinity'], 'position_state');

  const [state] = await sql<{ changes: number }[]>`
    select count(*)::int as changes from portfolio_timeseries_engine.change`;
  t.equal(state!.changes, 0, 'no change recorded by refused statements');
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
  await refused(t, sql, 'changing the key', () => sql`update position_state set security_id = 'S9' where security_id = 'S1'`,
    ['P1', 'S1', 'changing portfolio_id or security_id'], 'position_state');
  await refused(t, sql, 'truncating', () => sql`truncate position_state`, ['position_state', 'TRUNCATE'], 'position_state');
  const [row] = await sql<{ epoch: number }[]>`select epoch from position_state where security_id = 'S1'`;
  t.equal(row!.epoch, 2, 'epoch unchanged');
  const [history] = await sql<{ n: number }[]>`select count(*)::int as n from portfolio_timeseries_engine.epoch_start`;
  t.equal(history!.n, 1, 'the epoch history is intact (one start, from the insert)');
});
