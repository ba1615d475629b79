// Write a book into the contract tables the way a producer does: plain INSERTs naming only
// contract columns, a chunk of days per transaction (FX, snapshots, cash flows, then the manifest
// rows that declare those days complete).
import type { Sql } from '../../src/index.js';
import type { DemoBook } from './book.js';

const DAYS_PER_CHUNK = 20;

/** Rows `loadBook` writes, for a progress total. */
export const bookRows = (book: DemoBook): number =>
  book.counts.snapshots + book.counts.cashflows + book.counts.fx + book.counts.manifests;

export async function loadBook(sql: Sql, book: DemoBook, onRows: (written: number) => void = () => {}): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`insert into portfolios ${tx(book.portfolios)}`;
    await tx`insert into instruments ${tx(book.instruments)}`;
  });
  let written = 0;
  for (let i = 0; i < book.days.length; i += DAYS_PER_CHUNK) {
    const chunk = book.days.slice(i, i + DAYS_PER_CHUNK);
    const fx = chunk.flatMap((d) => d.fx);
    const snapshots = chunk.flatMap((d) => d.snapshots);
    const cashflows = chunk.flatMap((d) => d.cashflows);
    const manifests = chunk.flatMap((d) => d.manifests);
    await sql.begin(async (tx) => {
      if (fx.length) await tx`insert into fx_rates ${tx(fx)}`;
      if (snapshots.length) await tx`insert into daily_position_snapshots ${tx(snapshots)}`;
      if (cashflows.length) await tx`insert into cashflows ${tx(cashflows)}`;
      if (manifests.length) await tx`insert into daily_aggregation_manifest ${tx(manifests)}`;
    });
    written += fx.length + snapshots.length + cashflows.length + manifests.length;
    onRows(written);
  }
}
