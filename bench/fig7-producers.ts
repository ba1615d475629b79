// Figure 7, producers are not punished: N producer sessions write whole portfolio-days
// (snapshots, cash flows and the manifest row in one transaction) while a worker runs. Each day's
// portfolios are shuffled and dealt to the producers, so each writes its share in a random
// portfolio order and the producers drift apart in time. Counted: deadlocks (40P01) the producers
// see (the transaction is retried), and the database's own deadlock counter
// (pg_stat_database.deadlocks, which also counts any in the worker's sessions).
import { mulberry32 } from '../test/model/book.js';
import { TABLES, valuesRow, type PortfolioDay } from './book.js';
import { msText, percentile, row, secs, type Ctx, type FigureResult, type Row } from './context.js';
import { failed, startWorker, verify, waitAllCurrent, type Verification } from './engine.js';
import { loadReference, session, type Pg } from './pg.js';

const code = (e: unknown): string | undefined => (e as { code?: string } | null)?.code;

async function serverDeadlocks(sql: Pg): Promise<number> {
  const [r] = await sql<{ n: number }[]>`
    select deadlocks::int as n from pg_stat_database where datname = current_database()`;
  return r!.n;
}

export async function figure7(ctx: Ctx): Promise<FigureResult> {
  const s = ctx.sizes.producers;
  const rows: Row[] = [];
  const verifications: Verification[] = [];
  const details: Record<string, unknown> = {};
  const book = ctx.book({ groups: [{ count: s.portfolios, positions: s.positions }], days: s.days, seed: ctx.seed, gapRate: 0.02 });
  const rand = mulberry32(ctx.seed + 7);
  const queues: PortfolioDay[][] = Array.from({ length: s.sessions }, () => []);
  for (const day of book.days) {
    const ps = day.portfolios.slice();
    for (let i = ps.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [ps[i], ps[j]] = [ps[j]!, ps[i]!];
    }
    ps.forEach((p, i) => queues[i % s.sessions]!.push(p));
  }
  const db = await ctx.clone('f7_producers', undefined, { autovacuum: true });
  try {
    const admin = session(db.url);
    await loadReference(admin, book);
    const before = await serverDeadlocks(admin);
    const runner = await startWorker(db.url, 2);
    const seen = { deadlocks: 0, serialization: 0, other: [] as string[] };
    const txMs: number[] = [];
    let wallMs: number;
    try {
      ctx.log(`7 producers: ${s.sessions} sessions, ${book.totals.manifests} portfolio-days, a worker running ...`);
      const ins = (t: keyof typeof TABLES, lines: string[]) =>
        `insert into ${TABLES[t].table} (${TABLES[t].columns.join(', ')}) values ${lines.map(valuesRow).join(', ')}`;
      const t0 = performance.now();
      await Promise.all(queues.map(async (queue) => {
        const sql = session(db.url);
        try {
          for (const p of queue) {
            for (let attempt = 1; ; attempt++) {
              const t = performance.now();
              try {
                await sql.begin(async (tx) => {
                  if (p.snapshots.length > 0) await tx.unsafe(ins('snapshots', p.snapshots));
                  if (p.cashflows.length > 0) await tx.unsafe(ins('cashflows', p.cashflows));
                  await tx.unsafe(ins('manifests', [p.manifest]));
                });
                txMs.push(performance.now() - t);
                break;
              } catch (e) {
                if (code(e) === '40P01') seen.deadlocks++;
                else if (code(e) === '40001') seen.serialization++;
                else {
                  seen.other.push(`${p.portfolioId}: ${(e as Error).message}`);
                  break;
                }
                if (attempt >= 10) throw e;
              }
            }
          }
        } finally {
          await sql.end();
        }
      }));
      wallMs = performance.now() - t0;
      await waitAllCurrent(db.url, { pollMs: 50, timeoutMs: 10 * 60_000 });
    } finally {
      await runner.stop();
    }
    await new Promise((r) => setTimeout(r, 1200)); // backends flush their counters when idle
    const server = (await serverDeadlocks(admin)) - before;
    await admin.end();
    Object.assign(details, {
      producerDeadlocks: seen.deadlocks, serverDeadlocks: server, serializationFailures: seen.serialization, otherErrors: seen.other,
      transactions: txMs.length, wallMs, txP50: percentile(txMs, 50), txP99: percentile(txMs, 99),
    });
    rows.push(row('7', `deadlocks, ${s.sessions} producers writing whole portfolio-days, worker running`,
      `${seen.deadlocks} (server counter ${server})`, '0', seen.deadlocks === 0 && server === 0, seen.deadlocks + server));
    rows.push(row('7', `producer transactions (${txMs.length}, ${s.positions} positions each)`,
      `p50 ${msText(percentile(txMs, 50))}, p99 ${msText(percentile(txMs, 99))}, ${secs(wallMs)} in all`, 'report', null, null));
    const v = await verify(`7 concurrent producers`, db.url);
    if (seen.other.length > 0) {
      verifications.push({ ...v, ok: false, message: `${v.message}; producer errors: ${seen.other.slice(0, 3).join('; ')}` });
    } else {
      verifications.push(v);
    }
    ctx.log(`7 producers: ${seen.deadlocks} deadlocks seen, server counter ${server}; ${v.ok ? 'verified' : `NOT VERIFIED: ${v.message}`}`);
  } catch (e) {
    verifications.push(failed('7 concurrent producers', e));
    if (rows.length === 0) rows.push(row('7', 'deadlocks seen by concurrent producers', 'n/a', '0', false, null));
  } finally {
    await ctx.drop(db);
  }
  return { rows, verifications, details };
}
