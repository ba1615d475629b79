// A tiny SVG chart renderer for the demo report: a line (market value), bars (daily flows) and a
// strip of day states, on a shared time axis. Output is plain SVG markup, so the report needs no
// script and no network. Values arrive as Decimal; they become numbers only for pixel positions,
// and every number a reader sees (axis labels, tooltips) is formatted from the Decimal.
import type { Decimal } from '../../src/index.js';
import type { DayState } from '../../src/index.js';
import { formatMoney } from './summary.js';

export interface TimeDomain { from: string; to: string }

export interface ChartSize { width: number; height: number }

const MARGIN = { left: 72, right: 16, top: 12, bottom: 24 };

export const STATE_COLOURS: Record<DayState, string> = {
  current: '#2e9d5b',
  queued: '#4c7bd9',
  waiting: '#e0a526',
  waiting_previous_day: '#f0c96a',
  blocked: '#d64541',
  undeclared: '#9aa3ad',
};

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const day = (date: string) => Date.parse(`${date}T00:00:00Z`) / 86_400_000;
const px = (n: number) => (Math.round(n * 10) / 10).toString();

function xScale(domain: TimeDomain, size: ChartSize): (date: string) => number {
  const a = day(domain.from);
  const b = Math.max(day(domain.to), a + 1);
  const w = size.width - MARGIN.left - MARGIN.right;
  return (date) => MARGIN.left + ((day(date) - a) / (b - a)) * w;
}

function niceStep(range: number, count: number): number {
  const raw = range / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * magnitude >= raw) return m * magnitude;
  return 10 * magnitude;
}

/** 2500000 -> "2.5M", 750000 -> "750k", -1200 -> "-1.2k" (axis labels only). */
export function compact(n: number): string {
  const abs = Math.abs(n);
  const [div, suffix] = abs >= 1e9 ? [1e9, 'G'] : abs >= 1e6 ? [1e6, 'M'] : abs >= 1e3 ? [1e3, 'k'] : [1, ''];
  return `${Number((n / div).toFixed(2))}${suffix}`;
}

function yAxis(min: number, max: number, size: ChartSize): { y: (v: number) => number; svg: string } {
  if (min === max) [min, max] = [min - 1, max + 1];
  const step = niceStep(max - min, 4);
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const h = size.height - MARGIN.top - MARGIN.bottom;
  const y = (v: number) => MARGIN.top + (1 - (v - lo) / (hi - lo)) * h;
  let svg = '';
  for (let v = lo; v <= hi + step / 2; v += step) {
    svg += `<line class="grid" x1="${MARGIN.left}" x2="${size.width - MARGIN.right}" y1="${px(y(v))}" y2="${px(y(v))}"/>`;
    svg += `<text class="tick" x="${MARGIN.left - 6}" y="${px(y(v) + 4)}" text-anchor="end">${compact(v)}</text>`;
  }
  return { y, svg };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function xAxis(domain: TimeDomain, size: ChartSize): string {
  const x = xScale(domain, size);
  let svg = '';
  const d = new Date(`${domain.from.slice(0, 7)}-01T00:00:00Z`);
  if (d.toISOString().slice(0, 10) < domain.from) d.setUTCMonth(d.getUTCMonth() + 1);
  for (; d.toISOString().slice(0, 10) <= domain.to; d.setUTCMonth(d.getUTCMonth() + 1)) {
    const date = d.toISOString().slice(0, 10);
    const label = d.getUTCMonth() === 0 ? String(d.getUTCFullYear()) : MONTHS[d.getUTCMonth()]!;
    svg += `<line class="grid" x1="${px(x(date))}" x2="${px(x(date))}" y1="${MARGIN.top}" y2="${size.height - MARGIN.bottom}"/>`;
    svg += `<text class="tick" x="${px(x(date))}" y="${size.height - 8}" text-anchor="middle">${label}</text>`;
  }
  return svg;
}

function frame(kind: string, size: ChartSize, label: string, body: string): string {
  return `<svg class="chart ${kind}" role="img" aria-label="${escapeXml(label)}" xmlns="http://www.w3.org/2000/svg" width="${size.width}" height="${size.height}" viewBox="0 0 ${size.width} ${size.height}">${body}</svg>`;
}

export interface ValuePoint { date: string; value: Decimal }

/** End-of-day market value as a line, with a dot per day carrying a tooltip. */
export function lineChart(points: ValuePoint[], domain: TimeDomain, size: ChartSize, label: string, currency: string): string {
  if (points.length === 0) return frame('line', size, label, `<text class="empty" x="${size.width / 2}" y="${size.height / 2}" text-anchor="middle">no computed days</text>`);
  const values = points.map((p) => Number(p.value.toString()));
  // The range of the values (not from zero): a year's movement stays visible.
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.05 || 1;
  const { y, svg: grid } = yAxis(lo - pad, hi + pad, size);
  const x = xScale(domain, size);
  const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${px(x(p.date))} ${px(y(values[i]!))}`).join(' ');
  const dots = points
    .map((p, i) => `<circle class="dot" cx="${px(x(p.date))}" cy="${px(y(values[i]!))}" r="3"><title>${p.date}: ${formatMoney(p.value)} ${currency}</title></circle>`)
    .join('');
  return frame('line', size, label, `${grid}${xAxis(domain, size)}<path class="mark line" d="${d}"/>${dots}`);
}

export interface FlowPoint { date: string; bod: Decimal; eod: Decimal; fees: Decimal }

/**
 * Net portfolio flows per day (BOD + EOD) as bars: inflows up, outflows down. A flow more than
 * five times the next largest (an opening deposit) would flatten every other bar: the scale
 * leaves it out, and its bar is cut at the edge and labelled with its amount.
 */
export function flowChart(points: FlowPoint[], domain: TimeDomain, size: ChartSize, label: string, currency: string): string {
  const flows = points.filter((p) => !p.bod.isZero() || !p.eod.isZero());
  const values = flows.map((p) => Number(p.bod.plus(p.eod).toString()));
  const byMagnitude = values.map(Math.abs).sort((a, b) => b - a);
  const clip = byMagnitude.length > 1 && byMagnitude[0]! > 5 * byMagnitude[1]! ? byMagnitude[1]! * 1.15 : Infinity;
  const scaled = values.map((v) => Math.max(-clip, Math.min(clip, v)));
  const { y, svg: grid } = yAxis(Math.min(0, ...scaled), Math.max(0, ...scaled), size);
  const x = xScale(domain, size);
  const barWidth = Math.max(2, ((size.width - MARGIN.left - MARGIN.right) / 365) * 1.6);
  const bars = flows
    .map((p, i) => {
      const v = scaled[i]!;
      const top = Math.min(y(v), y(0));
      const height = Math.max(1, Math.abs(y(v) - y(0)));
      const tip = `${p.date}: BOD ${formatMoney(p.bod)}, EOD ${formatMoney(p.eod)}${p.fees.isZero() ? '' : ` (fees ${formatMoney(p.fees)})`} ${currency}`;
      const cut = v !== values[i]
        ? `<text class="tick cut" x="${px(x(p.date) + barWidth)}" y="${px(v > 0 ? top + 10 : top + height - 3)}">${compact(values[i]!)} (cut)</text>`
        : '';
      return `<rect class="mark bar ${v >= 0 ? 'in' : 'out'}" x="${px(x(p.date) - barWidth / 2)}" y="${px(top)}" width="${px(barWidth)}" height="${px(height)}"><title>${escapeXml(tip)}</title></rect>${cut}`;
    })
    .join('');
  const axis = `<line class="zero" x1="${MARGIN.left}" x2="${size.width - MARGIN.right}" y1="${px(y(0))}" y2="${px(y(0))}"/>`;
  return frame('flows', size, label, `${grid}${xAxis(domain, size)}${axis}${bars}`);
}

export interface StatePoint { date: string; state: DayState; detail: string | null }

/**
 * The state of every day on the time axis: runs of days in the same state as one coloured band
 * (no seams between neighbours), and over it one transparent cell per day, reaching to the next
 * day (weekends belong to Friday), whose tooltip says the day's state and why.
 */
export function statusStrip(days: StatePoint[], domain: TimeDomain, size: ChartSize, label: string): string {
  const x = xScale(domain, size);
  const oneDay = (size.width - MARGIN.left - MARGIN.right) / Math.max(1, day(domain.to) - day(domain.from));
  const top = MARGIN.top;
  const height = size.height - MARGIN.top - MARGIN.bottom;
  const sorted = [...days].sort((a, b) => (a.date < b.date ? -1 : 1));
  const end = (i: number) => (sorted[i + 1] ? x(sorted[i + 1]!.date) : x(sorted[i]!.date) + Math.max(oneDay, 3));
  let bands = '';
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1]!.state === sorted[i]!.state) j++;
    const from = x(sorted[i]!.date);
    bands += `<rect class="band" x="${px(from)}" y="${top}" width="${px(Math.max(1, end(j) - from))}" height="${height}" fill="${STATE_COLOURS[sorted[i]!.state]}"/>`;
    i = j + 1;
  }
  const cells = sorted
    .map((d, i) => {
      const tip = `${d.date}: ${d.state}${d.detail ? ` (${d.detail})` : ''}`;
      return `<rect class="mark day ${d.state}" x="${px(x(d.date))}" y="${top}" width="${px(Math.max(1, end(i) - x(d.date)))}" height="${height}" fill="transparent"><title>${escapeXml(tip)}</title></rect>`;
    })
    .join('');
  return frame('status', size, label, `${xAxis(domain, size)}${bands}${cells}`);
}
