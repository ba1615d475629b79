// `status --json | <slow reader>` gets the whole document (issue #8): the CLI sets its exit code
// and lets stdout drain instead of calling process.exit() with output still buffered. 20 runs on
// a 5,000-day database, each read by a reader that takes 4 kB at a time with pauses.
import t from 'tap';
import { spawn } from 'node:child_process';
import { freshDatabase } from './helpers/db.js';
import { cliCommand } from './helpers/cli.js';

const RUNS = 20;

function slowRead(url: string): Promise<{ code: number | null; text: string }> {
  return new Promise((resolve) => {
    const [cmd, argv] = cliCommand(['status', '--json']);
    const child = spawn(cmd, argv, {
      env: { ...process.env, DATABASE_URL: url }, stdio: ['ignore', 'pipe', 'inherit'],
    });
    const chunks: Buffer[] = [];
    const out = child.stdout!;
    out.pause();
    // The reader is slower than the writer: the pipe fills and the CLI's writes wait.
    const timer = setInterval(() => {
      const c = out.read(4096) as Buffer | null;
      if (c) chunks.push(c);
    }, 1);
    let code: number | null | undefined;
    let ended = false;
    const done = () => { if (ended && code !== undefined) { clearInterval(timer); resolve({ code, text: Buffer.concat(chunks).toString('utf8') }); } };
    out.on('end', () => { ended = true; done(); });
    out.on('readable', () => {}); // keeps 'end' coming once everything has been read
    child.on('exit', (c) => { code = c; done(); });
  });
}

t.test(`status --json through a slow pipe parses on ${RUNS} of ${RUNS} runs (5,000 days)`, async (t) => {
  const db = await freshDatabase(t);
  await db.sql`insert into instruments (security_id, currency) values ('S', 'USD')`;
  await db.sql`insert into portfolios (portfolio_id, base_currency, open_date) select 'P' || p, 'USD', '2000-01-01' from generate_series(1, 5) p`;
  await db.sql`insert into daily_position_snapshots (portfolio_id, security_id, date, quantity, cost_basis_local,
                 market_value, market_value_local, valuation_status)
               select 'P' || p, 'S', date '2020-01-01' + i, 1, 1, 1 + i, 1 + i, 'VALUED_CURRENT'
               from generate_series(1, 5) p, generate_series(0, 999) i`;
  await db.sql`insert into daily_aggregation_manifest select 'P' || p, date '2020-01-01' + i, 1
               from generate_series(1, 5) p, generate_series(0, 999) i`;
  let parsed = 0;
  let bytes = 0;
  const failures: string[] = [];
  for (let i = 0; i < RUNS; i += 2) {
    const results = await Promise.all([slowRead(db.url), slowRead(db.url)]);
    for (const r of results) {
      try {
        const rows = JSON.parse(r.text) as unknown[];
        if (r.code === 0 && rows.length === 5000) parsed++;
        else failures.push(`exit ${r.code}, ${rows.length} rows`);
        bytes = r.text.length;
      } catch {
        failures.push(`exit ${r.code}: ${r.text.length} bytes that do not parse`);
      }
    }
  }
  t.comment(`${parsed} of ${RUNS} runs parsed (${bytes} bytes each)`);
  t.strictSame(failures, [], 'no run was cut off');
  t.equal(parsed, RUNS, 'every run parsed, 5,000 rows, exit 0');
});
