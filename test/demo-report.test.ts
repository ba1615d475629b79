// The demo's HTML report, opened in headless Chromium (Debian's `chromium`): generated from a small
// computed book, it is self-contained (nothing to fetch), its charts are laid out by the browser
// (the report's own check writes what was drawn into the DOM, read back with --dump-dom), it shows
// the days that are not current, its figures equal sums taken straight from the output table, and
// a screenshot comes out.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Decimal, runWorkerOnce } from '../src/index.js';
import { demoBook } from '../scripts/demo/book.js';
import { dumpDom, findChromium, screenshot } from '../scripts/demo/chromium.js';
import { loadBook } from '../scripts/demo/load.js';
import { writeReport } from '../scripts/demo/report.js';
import { freshDatabase } from './helpers/db.js';

const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

t.test('the report renders in headless Chromium', async (t) => {
  const chromium = findChromium();
  if (!chromium) {
    const message = 'CHROMIUM IS NOT INSTALLED: the report was NOT checked in a browser (apt-get install -y chromium)';
    console.error(`\n${'!'.repeat(message.length)}\n${message}\n${'!'.repeat(message.length)}\n`);
    t.pass(`skipped: ${message}`);
    return;
  }
  const db = await freshDatabase(t);
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-report-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  // Three portfolios over six weeks; the last day of two of them is blocked and waiting.
  const book = demoBook({ days: 30, portfolios: ['GROWTH_USD', 'BALANCED_EUR', 'PENSION_EUR'] });
  await loadBook(db.sql, book);
  await runWorkerOnce({ connectionString: db.url, logger: quiet });
  const file = path.join(dir, 'report.html');
  const report = await writeReport(db.sql, file, { generatedAt: new Date('2025-02-14T12:00:00Z') });
  t.equal(report.charts, 9, 'three charts per portfolio');

  const html = readFileSync(file, 'utf8');
  t.notMatch(html, /<link|<img|<iframe|@import|url\(|\bsrc=|\bhref=/i, 'nothing to fetch: no links, images, imports or sources');
  t.same(html.match(/https?:\/\/[^"'\s<]+/g)?.filter((u) => u !== 'http://www.w3.org/2000/svg') ?? [], [], 'no URL but the SVG namespace');

  const dom = await dumpDom(chromium, file);
  t.match(dom, /data-charts-rendered="9\/9"/, 'Chromium laid out all nine charts with their marks');
  const drawn = [...dom.matchAll(/<svg class="chart (\w+)"[^>]*data-drawn-marks="(\d+)"/g)].map((m) => [m[1], Number(m[2])] as const);
  t.equal(drawn.length, 9, 'every chart reports what was drawn');
  for (const [kind, marks] of drawn) t.ok(marks > 0, `${kind} chart: ${marks} marks with a size`);
  const lines = drawn.filter(([kind]) => kind === 'line').map(([, marks]) => marks);
  t.same(lines, [1, 1, 1], 'one market-value line per portfolio');
  const states = drawn.filter(([kind]) => kind === 'status').map(([, marks]) => marks);
  t.same(states, [30, 30, 30], 'a cell for each of the 30 days of each portfolio');
  t.match(dom, /class="mark day blocked"/, 'the blocked day is shown');
  t.match(dom, /class="mark day waiting"/, 'the waiting day is shown');
  t.match(dom, /is unvalued: valuation_status FAILED/, 'with its reason');

  // The report's figures are sums of the stored values (independent SQL, not the report's code).
  for (const s of report.summaries) {
    const [row] = await db.sql<{ fees: Decimal; flows: Decimal; end: Decimal }[]>`
      select sum(fees) as fees, sum(bod_cashflow + eod_cashflow) + sum(fees) as flows,
             (select eod_market_value from portfolio_timeseries where portfolio_id = ${s.portfolioId} order by date desc limit 1) as end
      from portfolio_timeseries where portfolio_id = ${s.portfolioId}`;
    t.ok(s.fees.equals(row!.fees) && s.externalFlows.equals(row!.flows) && s.endValue.equals(row!.end), `${s.portfolioId}: figures equal the table's sums`);
    t.ok(s.resultAfterFees.equals(s.endValue.minus(s.startValue).minus(s.externalFlows)), `${s.portfolioId}: result after fees adds up`);
  }

  const png = path.join(dir, 'report.png');
  await screenshot(chromium, file, png);
  const header = readFileSync(png).subarray(0, 24);
  t.equal(header.subarray(1, 4).toString(), 'PNG', 'a PNG');
  t.equal(header.readUInt32BE(16), 1280, '1280 pixels wide');
  t.ok(statSync(png).size > 20_000, `with content (${statSync(png).size} bytes)`);
});
