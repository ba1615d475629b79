// `npm run demo`: a first run that shows the numbers. Starts a throwaway PostgreSQL (or uses
// DATABASE_URL), migrates it, loads a year of a realistic book as a producer would (four
// portfolios in USD and EUR, FX, deposits, payouts, fees, dividends), computes it with the
// engine's worker, prints a summary per portfolio and writes a self-contained HTML report.
// Progress goes to stderr (a bar on a terminal); results to stdout. Everything temporary is
// removed at the end, also on Ctrl-C or SIGTERM.
//
//   npm run demo [-- --out report.html] [--days N] [--screenshot docs/demo-report.png]
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connect, migrate, type TimeseriesLogger } from '../src/index.js';
import { demoBook } from './demo/book.js';
import { findChromium, screenshot } from './demo/chromium.js';
import { cleanUpOnSignals, cleanupAll, interrupted, onCleanup } from './demo/cleanup.js';
import { computeAll } from './demo/compute.js';
import { startEmbeddedPostgres } from './demo/embedded-postgres.js';
import { bookRows, loadBook } from './demo/load.js';
import { progress, type Progress } from './demo/progress.js';
import { writeReport } from './demo/report.js';
import { summaryTable } from './demo/summary.js';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string' },
    days: { type: 'string' },
    screenshot: { type: 'string' },
  },
  strict: true,
});
// `npm run` starts us in the package folder; INIT_CWD is where the user typed the command.
const cwd = process.env.INIT_CWD ?? process.cwd();
const out = path.resolve(cwd, args.out ?? 'demo-report.html');
const days = args.days === undefined ? 260 : Number(args.days);
if (!Number.isInteger(days) || days < 2) throw new Error(`--days must be a whole number >= 2, got ${args.days}`);

let bar: Progress | undefined;
const say = (message: string) => (bar ? bar.log(message) : process.stderr.write(`${message}\n`));
const logger: TimeseriesLogger = {
  error: (m) => say(`error: ${m}`),
  warn: (m) => say(`warning: ${m}`),
  info: () => {},
  debug: () => {},
};
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)}s`;

cleanUpOnSignals(() => bar?.abort());

async function main(): Promise<void> {
  const started = Date.now();
  let url = process.env.DATABASE_URL;
  if (url) {
    say('using DATABASE_URL');
  } else {
    say('DATABASE_URL is not set: starting a throwaway PostgreSQL (removed at the end)');
    const server = await startEmbeddedPostgres({ say });
    url = server.url;
  }
  await migrate(url, { logger });
  const sql = connect(url, { max: 2 });
  onCleanup(() => sql.end({ timeout: 5 }));

  const book = demoBook({ days });
  const ids = book.portfolios.map((p) => p.portfolio_id);
  const [loaded] = await sql<{ n: number }[]>`select count(*)::int as n from portfolios where portfolio_id = any(${ids})`;
  if ((loaded?.n ?? 0) > 0) {
    say(`the demo portfolios (${ids.join(', ')}) are already in this database: computing and reporting only`);
  } else {
    const t0 = Date.now();
    bar = progress('loading', bookRows(book));
    await loadBook(sql, book, (n) => bar?.update(n));
    bar.finish(`${book.counts.snapshots} snapshots, ${book.counts.cashflows} cash flows, ${book.counts.fx} FX rates, ${book.counts.manifests} declared days in ${seconds(t0)}`);
    bar = undefined;
  }

  const t1 = Date.now();
  let computing: Progress | undefined;
  const statuses = await computeAll(sql, url, logger, (p) => {
    computing ??= bar = progress('computing', p.declared);
    computing.update(p.current, `${p.queued} queued`);
  });
  const current = statuses.filter((d) => d.state === 'current').length;
  computing?.finish(`${current} of ${statuses.length} portfolio-days current in ${seconds(t1)}`);
  bar = undefined;

  const report = await writeReport(sql, out, { title: 'portfolio-timeseries demo: a year of four portfolios' });
  process.stdout.write(`\n${summaryTable(report.summaries)}\n\n`);
  const waiting = statuses.filter((d) => d.state !== 'current');
  if (waiting.length > 0) {
    process.stdout.write('Not current (the last day looks like "today" in production: data still arriving):\n');
    const width = Math.max(...waiting.map((d) => d.portfolio_id.length));
    for (const d of waiting) process.stdout.write(`  ${d.portfolio_id.padEnd(width)}  ${d.date}  ${d.state}${d.detail ? `: ${d.detail}` : ''}\n`);
    process.stdout.write('\n');
  }
  process.stdout.write(`Report: ${out}\n`);
  if (args.screenshot) {
    const chromium = findChromium();
    if (!chromium) throw new Error('--screenshot needs chromium on PATH (Debian: apt-get install chromium)');
    const png = path.resolve(cwd, args.screenshot);
    await screenshot(chromium, out, png);
    process.stdout.write(`Screenshot: ${png}\n`);
  }
  say(`done in ${seconds(started)}${process.env.DATABASE_URL ? '' : '; removing the throwaway PostgreSQL'}`);
}

try {
  await main();
} catch (error) {
  bar?.abort();
  if (!interrupted()) {
    process.stderr.write(`demo failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  }
} finally {
  if (!interrupted()) await cleanupAll();
}
