// The demo's HTML report: per portfolio, its figures, end-of-day market value, daily flows and
// the state of every day, read from the database through the library's readers and the contract
// tables. One self-contained file: inline CSS and SVG, no script needed to draw, no network.
// A few lines of inline script only check that the browser laid the charts out (the report test
// reads the result from the DOM) and are harmless without it.
import { writeFile } from 'node:fs/promises';
import { readPortfolioTimeseries, readStatus, type DayState, type Sql } from '../../src/index.js';
import { escapeXml, flowChart, lineChart, STATE_COLOURS, statusStrip, type TimeDomain } from './svg.js';
import { formatMoney, summarise, type PortfolioSummary } from './summary.js';

export interface ReportOptions {
  title?: string;
  /** Shown in the header; default now. */
  generatedAt?: Date;
}

export interface Report {
  html: string;
  summaries: PortfolioSummary[];
  /** Number of charts in the report (three per portfolio). */
  charts: number;
}

const STATE_ORDER: DayState[] = ['current', 'queued', 'waiting', 'waiting_previous_day', 'blocked', 'undeclared'];

const CSS = `
:root { color-scheme: light; --ink: #1d2733; --muted: #5f6b7a; --line: #d9dee5; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink); background: #f4f6f9; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0; }
h3 { font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 14px 0 4px; }
.sub { color: var(--muted); margin: 0 0 16px; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 0 0 18px; color: var(--muted); }
.legend span::before { content: ""; display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; background: var(--c); }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px 10px; margin: 0 0 18px; }
.head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px 28px; }
.head .base { color: var(--muted); }
.figures { display: flex; flex-wrap: wrap; gap: 6px 28px; margin: 8px 0 0; }
.figures div { min-width: 120px; }
.figures dt { font-size: 12px; color: var(--muted); }
.figures dd { margin: 0; font-variant-numeric: tabular-nums; font-weight: 600; }
.neg { color: #b03a2e; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg .grid { stroke: #eef1f4; }
svg .zero { stroke: #9aa3ad; }
svg .tick { font-size: 11px; fill: #7b8794; }
svg .line { fill: none; stroke: #2f6fd0; stroke-width: 1.8; }
svg .dot { fill: transparent; }
svg .dot:hover { fill: #2f6fd0; }
svg .bar.in { fill: #2e9d5b; }
svg .bar.out { fill: #d64541; }
svg .empty { fill: #7b8794; }
footer { color: var(--muted); font-size: 12px; margin-top: 12px; }
`;

// Marks the DOM with what the browser drew: data-charts-rendered="k/n" on <body>, and
// data-drawn-marks on each chart (marks with a non-empty box).
const RENDER_CHECK = `
(function () {
  var charts = document.querySelectorAll('svg.chart'), ok = 0;
  for (var i = 0; i < charts.length; i++) {
    var svg = charts[i], box = svg.getBoundingClientRect(), marks = svg.querySelectorAll('.mark'), drawn = 0;
    for (var j = 0; j < marks.length; j++) { var b = marks[j].getBBox(); if (b.width > 0 || b.height > 0) drawn++; }
    svg.setAttribute('data-drawn-marks', String(drawn));
    if (box.width > 0 && box.height > 0 && drawn > 0) ok++;
  }
  document.body.setAttribute('data-charts-rendered', ok + '/' + charts.length);
})();
`;

function figure(label: string, value: string, negative = false): string {
  return `<div><dt>${escapeXml(label)}</dt><dd${negative ? ' class="neg"' : ''}>${escapeXml(value)}</dd></div>`;
}

export async function buildReport(sql: Sql, options: ReportOptions = {}): Promise<Report> {
  const portfolios = await sql<{ portfolio_id: string; base_currency: string }[]>`
    select portfolio_id, base_currency from portfolios order by portfolio_id`;
  const allDays = await readStatus(sql);
  const dates = allDays.map((d) => d.date).sort();
  const domain: TimeDomain = { from: dates[0] ?? '2000-01-01', to: dates.at(-1) ?? '2000-01-02' };
  const size = { width: 1180, height: 220 };

  const summaries: PortfolioSummary[] = [];
  const cards: string[] = [];
  for (const p of portfolios) {
    const rows = await readPortfolioTimeseries(sql, p.portfolio_id);
    const days = allDays.filter((d) => d.portfolio_id === p.portfolio_id);
    const s = summarise(p.portfolio_id, p.base_currency, rows, days);
    summaries.push(s);
    const ccy = p.base_currency;
    const notCurrent = days.filter((d) => d.state !== 'current');
    cards.push(`
<section class="card" id="${escapeXml(p.portfolio_id)}">
  <div class="head"><h2>${escapeXml(p.portfolio_id)}</h2><span class="base">base currency ${escapeXml(ccy)}</span>
    <span class="base">${s.firstDate ?? '-'} to ${s.lastDate ?? '-'}</span></div>
  <dl class="figures">
    ${figure(`end value (${ccy})`, formatMoney(s.endValue))}
    ${figure('deposits - withdrawals', formatMoney(s.externalFlows), s.externalFlows.isNegative())}
    ${figure('fees', formatMoney(s.fees))}
    ${figure('result after fees', formatMoney(s.resultAfterFees), s.resultAfterFees.isNegative())}
    ${figure('days current', `${s.states.current ?? 0} of ${s.days}`)}
  </dl>
  <h3>Market value, end of day (${escapeXml(ccy)})</h3>
  ${lineChart(rows.map((r) => ({ date: r.date, value: r.eodMarketValue })), domain, size, `${p.portfolio_id} market value`, ccy)}
  <h3>Daily flows: deposits up, withdrawals and fees down (${escapeXml(ccy)})</h3>
  ${flowChart(rows.map((r) => ({ date: r.date, bod: r.bodCashflow, eod: r.eodCashflow, fees: r.fees })), domain, { width: size.width, height: 150 }, `${p.portfolio_id} daily flows`, ccy)}
  <h3>State of every day</h3>
  ${statusStrip(days.map((d) => ({ date: d.date, state: d.state, detail: d.detail })), domain, { width: size.width, height: 56 }, `${p.portfolio_id} day states`)}
  ${notCurrent.length > 0 && notCurrent.length <= 8
    ? `<ul>${notCurrent.map((d) => `<li>${d.date}: <b>${d.state}</b>${d.detail ? `: ${escapeXml(d.detail)}` : ''}</li>`).join('')}</ul>`
    : ''}
</section>`);
  }

  const counts = new Map<DayState, number>();
  for (const d of allDays) counts.set(d.state, (counts.get(d.state) ?? 0) + 1);
  const legend = STATE_ORDER.map((state) => `<span style="--c:${STATE_COLOURS[state]}">${state} ${counts.get(state) ?? 0}</span>`).join('');
  const generated = (options.generatedAt ?? new Date()).toISOString().replace('T', ' ').slice(0, 16);
  const title = options.title ?? 'portfolio-timeseries demo';
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeXml(title)}</h1>
<p class="sub">${portfolios.length} portfolios, ${allDays.length} portfolio-days, ${domain.from} to ${domain.to} (simulated market data). Read from
<code>portfolio_timeseries</code> and <code>status</code>; generated ${generated} UTC. Hover a point, bar or day for its values.</p>
<div class="legend">${legend}</div>
${cards.join('\n')}
<footer>portfolio-timeseries: every figure is a sum of stored values; "result after fees" = end value - start value - (deposits - withdrawals).</footer>
<script>${RENDER_CHECK}</script>
</body>
</html>
`;
  return { html, summaries, charts: portfolios.length * 3 };
}

export async function writeReport(sql: Sql, file: string, options: ReportOptions = {}): Promise<Report> {
  const report = await buildReport(sql, options);
  await writeFile(file, report.html);
  return report;
}
