// Figure 2, producer cost: what the engine's triggers add to (a) the COPY of one day's snapshots
// of every portfolio of the book and (b) a 100-row INSERT of one portfolio-day, each against the
// same statement with triggers off (session_replication_role = replica), on top of a loaded and
// computed history. No worker runs while they are timed (the queue grows, that is fine). Each
// statement writes a new day, committed on its own, as a producer's would be; the two variants
// alternate day by day (which one goes first alternates too), after one untimed warm-up pair.
// Afterwards the days' cash flows and manifests are written, drained, and verified.
import { TABLES, valuesRow, type BookDay, type PortfolioDay } from './book.js';
import { median, pctText, row, type Ctx, type FigureResult } from './context.js';
import { drainOnce, failed, verify, type Verification } from './engine.js';
import { analyzeAll, copyAll, copyDays, loadReference, session, type Pg } from './pg.js';

interface Timings {
  on: number[];
  off: number[];
  medianOn: number;
  medianOff: number;
  overPct: number;
}

function summarise(on: number[], off: number[]): Timings {
  const medianOn = median(on);
  const medianOff = median(off);
  return { on, off, medianOn, medianOff, overPct: (medianOn / medianOff - 1) * 100 };
}

export async function figure2(ctx: Ctx): Promise<FigureResult> {
  const s = ctx.sizes.producer;
  const pairs = s.repeats + 1; // + a warm-up pair
  const book = ctx.book({
    groups: [{ count: s.portfolios, positions: s.positions }, { count: 1, positions: s.insertRows }],
    days: s.history + 2 * pairs, seed: ctx.seed, gapRate: 0,
  });
  const bulk = new Set(book.groups[0]);
  const single = book.groups[1]![0]!;
  const inBulk = (p: PortfolioDay) => bulk.has(p.portfolioId);
  const rows = [];
  const verifications: Verification[] = [];
  const details: Record<string, unknown> = {};
  const db = await ctx.clone('f2_producer');
  try {
    ctx.log(`2 producer cost: loading and computing ${s.history} days of history ...`);
    const on = session(db.url);
    const off = session(db.url, { replica: true });
    await loadReference(on, book);
    await copyAll(on, book.days.slice(0, s.history));
    await drainOnce(db.url, 2);
    await analyzeAll(db.url);

    const copyOf = (sql: Pg, day: BookDay) => async () => {
      const t = performance.now();
      await copyDays(sql, [day], 'snapshots', inBulk);
      return performance.now() - t;
    };
    const insertOf = (sql: Pg, day: BookDay) => {
      const p = day.portfolios.find((x) => x.portfolioId === single)!;
      const text = `insert into ${TABLES.snapshots.table} (${TABLES.snapshots.columns.join(', ')}) values\n` +
        p.snapshots.map(valuesRow).join(',\n');
      return async () => {
        const t = performance.now();
        await sql.unsafe(text);
        return performance.now() - t;
      };
    };
    const copyOn: number[] = [];
    const copyOff: number[] = [];
    const insertOn: number[] = [];
    const insertOff: number[] = [];
    ctx.log(`2 producer cost: ${s.repeats} x (COPY of ${countIn(book.days[s.history]!, inBulk)} snapshots, ` +
      `INSERT of ${s.insertRows} rows), with and without triggers ...`);
    for (let i = 0; i < pairs; i++) {
      const dayA = book.days[s.history + 2 * i]!;
      const dayB = book.days[s.history + 2 * i + 1]!;
      const triggersFirst = i % 2 === 0;
      const [first, second] = triggersFirst ? [on, off] : [off, on];
      const c1 = await copyOf(first, dayA)();
      const c2 = await copyOf(second, dayB)();
      const i1 = await insertOf(first, dayA)();
      const i2 = await insertOf(second, dayB)();
      if (i === 0) continue; // warm-up
      (triggersFirst ? copyOn : copyOff).push(c1);
      (triggersFirst ? copyOff : copyOn).push(c2);
      (triggersFirst ? insertOn : insertOff).push(i1);
      (triggersFirst ? insertOff : insertOn).push(i2);
    }
    const copy = summarise(copyOn, copyOff);
    const insert = summarise(insertOn, insertOff);
    details.copy = copy;
    details.insert = insert;
    const copyRows = countIn(book.days[s.history]!, inBulk);
    rows.push(row('2a', `COPY of one day's ${copyRows} snapshots (${s.portfolios} portfolios): triggers add`,
      `${pctText(copy.overPct)} (${copy.medianOn.toFixed(1)} vs ${copy.medianOff.toFixed(1)} ms)`, '<= +30%', copy.overPct <= 30, copy.overPct));
    rows.push(row('2b', `INSERT of one portfolio-day, ${s.insertRows} rows: triggers add`,
      `${pctText(insert.overPct)} (${insert.medianOn.toFixed(2)} vs ${insert.medianOff.toFixed(2)} ms)`, '<= +30%', insert.overPct <= 30, insert.overPct));
    ctx.log(`2 producer cost: COPY ${pctText(copy.overPct)}, INSERT ${pctText(insert.overPct)} (medians of ${s.repeats}); verifying ...`);

    // The measured days' cash flows and manifests (with triggers: the manifests declare the days
    // whose snapshots were written with triggers off), then everything is drained and checked.
    const measured = book.days.slice(s.history);
    await copyDays(on, measured, 'cashflows');
    await copyDays(on, measured, 'manifests');
    await on.end();
    await off.end();
    await drainOnce(db.url, 2);
    verifications.push(await verify('2 producer cost', db.url));
  } catch (e) {
    verifications.push(failed('2 producer cost', e));
    if (rows.length === 0) {
      rows.push(row('2a', 'COPY of one day of snapshots: triggers add', 'n/a', '<= +30%', false, null));
      rows.push(row('2b', `INSERT of one portfolio-day: triggers add`, 'n/a', '<= +30%', false, null));
    }
  } finally {
    await ctx.drop(db);
  }
  return { rows, verifications, details };
}

function countIn(day: BookDay, keep: (p: PortfolioDay) => boolean): number {
  return day.portfolios.filter(keep).reduce((n, p) => n + p.snapshots.length, 0);
}
