// The sweep (graphile-worker's crontab, every minute, and every worker start) is a safety net:
// it wakes a drain only when something is pending. A day that is blocked or waiting for inputs
// has nothing pending until an input changes, and that input's own trigger records a change and
// wakes a drain. So a blocked or waiting portfolio costs nothing per minute: the sweep records no
// change for it and queues no job.
import t from 'tap';
import { freshDatabase } from './helpers/db.js';
import { declare, insertFx, insertInstrument, insertPortfolio, insertSnapshot } from './helpers/fixtures.js';
import { readStatus } from '../src/status.js';
import { runWorkerOnce, sweep } from '../src/worker.js';

t.test('a blocked or waiting day costs nothing per minute: the sweep records no change and queues no job', async (t) => {
  const db = await freshDatabase(t);
  const { sql } = db;
  // B is blocked (a EUR position, no EUR->USD rate); W is waiting (1 of 2 positions).
  await insertPortfolio(sql, 'B', 'USD');
  await insertPortfolio(sql, 'W', 'USD');
  await insertInstrument(sql, 'E', 'EUR');
  await insertInstrument(sql, 'U', 'USD');
  await insertSnapshot(sql, { portfolio_id: 'B', security_id: 'E', date: '2025-03-03', quantity: 1,
    cost_basis_local: 10, market_value: 11, market_value_local: 10 });
  await declare(sql, 'B', '2025-03-03', 1);
  await insertSnapshot(sql, { portfolio_id: 'W', security_id: 'U', date: '2025-03-03', quantity: 1,
    cost_basis_local: 5, market_value: 5, market_value_local: 5 });
  await declare(sql, 'W', '2025-03-03', 2);
  await runWorkerOnce({ connectionString: db.url });

  const states = async () => (await readStatus(sql)).map((s) => `${s.portfolio_id} ${s.date} ${s.state}: ${s.detail}`);
  t.same(await states(), [
    'B 2025-03-03 blocked: FX rate EUR->USD missing on or before 2025-03-03',
    'W 2025-03-03 waiting: 1 of 2',
  ]);
  const queue = async () => {
    const [row] = await sql<{ changes: number; references: number; jobs: number }[]>`
      select (select count(*)::int from portfolio_timeseries_engine.change) as changes,
             (select count(*)::int from portfolio_timeseries_engine.reference_change) as references,
             (select count(*)::int from graphile_worker.jobs where task_identifier like 'portfolio_timeseries:%') as jobs`;
    return row!;
  };
  t.same(await queue(), { changes: 0, references: 0, jobs: 0 }, 'the drain left nothing pending');

  for (const minute of [1, 2, 3]) {
    t.equal(await sweep(db.url), 0, `minute ${minute}: the sweep finds nothing pending`);
    t.same(await queue(), { changes: 0, references: 0, jobs: 0 }, `minute ${minute}: no change recorded, no job queued`);
  }

  // What unblocks B is an input, and writing it wakes the drain by itself.
  await insertFx(sql, 'EUR', 'USD', '2025-03-03', '1.1');
  t.equal((await queue()).jobs, 1, 'the rate\'s own trigger queued a drain');
  await runWorkerOnce({ connectionString: db.url });
  t.same(await states(), ['B 2025-03-03 current: null', 'W 2025-03-03 waiting: 1 of 2']);
  t.same(await queue(), { changes: 0, references: 0, jobs: 0 });
});
