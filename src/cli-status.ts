// `portfolio-timeseries status`: the state of every portfolio-day (docs/contract.md section 5),
// filtered in SQL, or a summary of them.
import { parseArgs } from 'node:util';
import { isoDate } from './cli-args.js';
import { out } from './cli-output.js';
import { connect, connectionStringFromEnv } from './db.js';
import { EXIT, UsageError } from './errors.js';
import { probeDatabase } from './probe.js';
import { DAY_STATES, readStatus, readStatusSummary } from './status.js';
import type { DayState, StatusFilter, StatusSummary } from './types.js';

export const STATUS_USAGE = `usage: portfolio-timeseries status [--portfolio P] [--state S]... [--from YYYY-MM-DD] [--to YYYY-MM-DD]
                                 [--summary] [--json]

  The state of every portfolio-day: undeclared, waiting (k of n), waiting_previous_day, blocked
  (with the reason), queued or current, and whether a last complete row exists.

  --portfolio P     one portfolio
  --state S         only days in state S (repeat, or comma-separate: --state blocked,waiting)
  --from D, --to D  only days in this range (inclusive)
  --summary         counts per state, the oldest day not current, blocked days by kind of reason
  --json            --json: an array of {portfolio_id, date, state, detail, has_row};
                    with --summary: {days, portfolios, states, oldest_not_current, blocked}
  Connection: DATABASE_URL.

  exit codes: 0 printed (whatever the states); 1 failed; 2 bad option or DATABASE_URL;
  3 database unreachable or not migrated.
`;

function parseStates(values: string[] | undefined): DayState[] | undefined {
  if (!values || values.length === 0) return undefined;
  const states = values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const s of states) {
    if (!DAY_STATES.includes(s as DayState)) throw new UsageError(`--state must be one of ${DAY_STATES.join(', ')}, got ${JSON.stringify(s)}`);
  }
  return states as DayState[];
}

function summaryText(s: StatusSummary): string {
  const lines = [`${s.days} portfolio-days of ${s.portfolios} portfolio(s)`];
  for (const state of DAY_STATES) lines.push(`  ${state.padEnd(22)}${String(s.states[state]).padStart(10)}`);
  const o = s.oldest_not_current;
  lines.push(o ? `oldest day not current: ${o.portfolio_id} ${o.date} ${o.state}${o.detail ? ` (${o.detail})` : ''}` : 'every day is current');
  if (s.blocked.length > 0) {
    lines.push('blocked days by reason:');
    for (const b of s.blocked) {
      lines.push(`  ${b.reason.padEnd(30)}${String(b.days).padStart(8)} days ${String(b.portfolios).padStart(6)} portfolios   e.g. ${b.example}`);
    }
  }
  return lines.join('\n');
}

export async function statusCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      portfolio: { type: 'string' },
      state: { type: 'string', multiple: true },
      from: { type: 'string' },
      to: { type: 'string' },
      summary: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    out(STATUS_USAGE);
    return EXIT.ok;
  }
  const states = parseStates(values.state);
  const from = isoDate(values.from, '--from');
  const to = isoDate(values.to, '--to');
  if (from && to && from > to) throw new UsageError(`--from ${from} is after --to ${to}`);
  if (values.summary && states) throw new UsageError('--summary counts every state: it does not take --state');
  const filter: StatusFilter = {
    ...(values.portfolio !== undefined ? { portfolioId: values.portfolio } : {}),
    ...(states ? { states } : {}),
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
  };
  const url = connectionStringFromEnv();
  await probeDatabase(url, { applicationName: 'portfolio-timeseries status' });
  const sql = connect(url, { max: 1 });
  try {
    if (values.summary) {
      const summary = await readStatusSummary(sql, filter);
      out(values.json ? JSON.stringify(summary, null, 2) : summaryText(summary));
      return EXIT.ok;
    }
    const rows = await readStatus(sql, filter);
    if (values.json) {
      out(JSON.stringify(rows, null, 2));
    } else if (rows.length === 0) {
      out('no portfolio-days');
    } else {
      out(rows.map((r) => [r.portfolio_id, r.date, r.state.padEnd(20), r.has_row ? 'row' : 'no row', r.detail ?? ''].join('  ').trimEnd()).join('\n'));
    }
    return EXIT.ok;
  } finally {
    await sql.end();
  }
}
