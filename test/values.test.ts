// Values at the edges of numeric(30,10): cost rounded once from the exact quotient, and totals
// that do not fit the output columns block their day with a reason instead of failing the job.
import t from 'tap';
import { freshDatabase } from './helpers/db.js';
import { declare, insertInstrument, insertPortfolio, insertSnapshot, positionRows } from './helpers/fixtures.js';
import { readStatus } from '../src/status.js';
import { runWorkerOnce } from '../src/worker.js';

t.test('cost = cost_basis_local / quantity, rounded once, half away from zero', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  await insertPortfolio(sql, 'P', 'USD');
  const cases: [string, string, string][] = [
    // cost_basis_local, quantity, cost
    ['50000', '1000000000000000.0000000001', '0.0000000000'], // 4.99999...e-11: rounding the division first gave 1e-10
    ['1', '3', '0.3333333333'],
    ['2', '3', '0.6666666667'],
    ['0.0000000001', '2', '0.0000000001'], // exactly half a unit: away from zero
    ['-0.0000000001', '2', '-0.0000000001'],
    ['0.0000000001', '-2', '-0.0000000001'],
    ['0.0000000003', '7', '0.0000000000'],
    ['99999999999999999999.9999999999', '0.0000000001', 'blocked'],
    ['12345.6789', '0', '0.0000000000'],
  ];
  for (const [i, [basis, qty]] of cases.entries()) {
    const s = `S${i}`;
    await insertInstrument(sql, s, 'USD');
    await insertSnapshot(sql, { portfolio_id: 'P', security_id: s, date: `2025-01-${String(i + 2).padStart(2, '0')}`,
      quantity: qty, cost_basis_local: basis, market_value: 1, market_value_local: 1 });
    await declare(sql, 'P', `2025-01-${String(i + 2).padStart(2, '0')}`, 1);
  }
  await runWorkerOnce({ connectionString: db.url });
  const rows = new Map((await positionRows(sql, 'P')).map((r) => [r.security_id, r.cost]));
  const status = new Map((await readStatus(sql, { portfolioId: 'P' })).map((s) => [s.date, s]));
  for (const [i, [basis, qty, cost]] of cases.entries()) {
    const date = `2025-01-${String(i + 2).padStart(2, '0')}`;
    if (cost === 'blocked') {
      t.equal(status.get(date)?.state, 'blocked', `${basis} / ${qty} does not fit: the day is blocked`);
      t.match(status.get(date)?.detail ?? '', /position_timeseries\.cost of S\d on \d{4}-\d\d-\d\d is 9+\.9+E\+29|cost of S\d on .* does not fit numeric\(30,10\)/,
        'the reason names the column, the security and the day');
      break;
    }
    t.equal(rows.get(`S${i}`), cost, `${basis} / ${qty} = ${cost}`);
  }
  t.equal([...status.values()].filter((s) => s.state === 'waiting_previous_day').length, 1,
    'the day after the blocked one waits for it');
});
