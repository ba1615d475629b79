// `portfolio-timeseries returns`: TWR, MWR and risk of one portfolio over a range, from one
// consistent snapshot. --json prints the object issue #10 specifies (numbers as decimal strings,
// absent values null, returns as fractions); without it, a readable table.
import { parseArgs } from 'node:util';
import { connect, connectionStringFromEnv } from './db.js';
import { isoDate } from './cli-args.js';
import { out } from './cli-output.js';
import { explain, isUsageMistake, UsageError } from './errors.js';
import { probeDatabase } from './probe.js';
import { Decimal } from './decimal.js';
import { readMoneyWeightedReturn, readReturns, readRisk } from './returns.js';
import type { ReturnBasis, ReturnPeriod, ReturnRange } from './types.js';

export const RETURNS_USAGE = `usage: portfolio-timeseries returns --portfolio P
         (--from YYYY-MM-DD --to YYYY-MM-DD | --period MTD|QTD|YTD|SI|1Y|3Y|5Y --as-of YYYY-MM-DD)
         [--basis GROSS|NET] [--risk-free R] [--json]

  Time-weighted return (per day and cumulative), money-weighted return (XIRR), volatility,
  maximum drawdown, Sharpe and Sortino of portfolio P over the range, from current days only;
  days of the range that are not current are listed as missing. Returns are fractions
  (0.05 is 5%). --basis defaults to GROSS; --risk-free is an annual rate (default 0).
  Connection: DATABASE_URL.

  exit codes: 0 printed; 1 failed; 2 bad option or DATABASE_URL; 3 database unreachable or not
  migrated.
`;

const PERIODS: readonly ReturnPeriod[] = ['MTD', 'QTD', 'YTD', 'SI', '1Y', '3Y', '5Y'];

interface Parsed {
  help: boolean;
  portfolio: string;
  range: ReturnRange;
  basis: ReturnBasis;
  riskFree: Decimal;
  json: boolean;
}

function parse(args: string[]): Parsed {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      portfolio: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      period: { type: 'string' },
      'as-of': { type: 'string' },
      basis: { type: 'string', default: 'GROSS' },
      'risk-free': { type: 'string', default: '0' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const help = values.help === true;
  if (help) return { help, portfolio: '', range: { from: '', to: '' }, basis: 'GROSS', riskFree: new Decimal(0), json: false };
  if (!values.portfolio) throw new UsageError('--portfolio is required');
  const explicit = values.from !== undefined || values.to !== undefined;
  const named = values.period !== undefined || values['as-of'] !== undefined;
  let range: ReturnRange;
  if (explicit && named) throw new UsageError('give either --from and --to, or --period and --as-of, not both');
  if (explicit) {
    if (values.from === undefined || values.to === undefined) throw new UsageError('--from and --to go together');
    range = { from: isoDate(values.from, '--from')!, to: isoDate(values.to, '--to')! };
    if (range.from > range.to) throw new UsageError(`--from ${range.from} is after --to ${range.to}`);
  } else if (named) {
    if (values.period === undefined || values['as-of'] === undefined) throw new UsageError('--period and --as-of go together');
    const period = values.period.toUpperCase() as ReturnPeriod;
    if (!PERIODS.includes(period)) throw new UsageError(`--period must be one of ${PERIODS.join(', ')}, got ${JSON.stringify(values.period)}`);
    range = { period, asOf: isoDate(values['as-of'], '--as-of')! };
  } else {
    throw new UsageError('a range is required: --from and --to, or --period and --as-of');
  }
  const basis = String(values.basis).toUpperCase();
  if (basis !== 'GROSS' && basis !== 'NET') throw new UsageError(`--basis must be GROSS or NET, got ${JSON.stringify(values.basis)}`);
  const rf = String(values['risk-free']);
  if (!/^-?\d+(\.\d+)?$/.test(rf) || new Decimal(rf).lte(-1)) {
    throw new UsageError(`--risk-free must be a decimal annual rate above -1 (0.03 is 3%), got ${JSON.stringify(rf)}`);
  }
  return { help, portfolio: values.portfolio, range, basis, riskFree: new Decimal(rf), json: values.json === true };
}

const str = (v: Decimal | null): string | null => (v === null ? null : v.toFixed());
const pct = (v: Decimal | null): string => (v === null ? '-' : `${v.times(100).toFixed(6)}%`);
const num = (v: Decimal | null): string => (v === null ? '-' : v.toFixed(6));

export async function returnsCommand(args: string[]): Promise<number> {
  let p: Parsed;
  try {
    p = parse(args);
  } catch (error) {
    if (isUsageMistake(error)) {
      console.error(`portfolio-timeseries returns: ${(error as Error).message}\n\n${RETURNS_USAGE}`);
      return 2;
    }
    throw error;
  }
  if (p.help) {
    out(RETURNS_USAGE);
    return 0;
  }
  let sql: ReturnType<typeof connect> | undefined;
  try {
    const url = connectionStringFromEnv();
    await probeDatabase(url, { applicationName: 'portfolio-timeseries returns' });
    sql = connect(url, { max: 1 });
    const { twr, mwr, risk } = await sql.begin('isolation level repeatable read read only', async (tx) => ({
      twr: await readReturns(tx, p.portfolio, p.range, { basis: p.basis }),
      mwr: await readMoneyWeightedReturn(tx, p.portfolio, p.range, { basis: p.basis }),
      risk: await readRisk(tx, p.portfolio, p.range, { basis: p.basis, riskFreeRate: p.riskFree }),
    }));
    if (p.json) {
      out(JSON.stringify({
        portfolio_id: twr.portfolioId,
        from: twr.from,
        to: twr.to,
        basis: twr.basis,
        twr: str(twr.twr),
        twr_annualised: str(twr.twrAnnualised),
        mwr: str(mwr.mwr),
        mwr_annualised: str(mwr.mwrAnnualised),
        mwr_period: str(mwr.mwrPeriod),
        volatility: str(risk.volatility),
        max_drawdown: str(risk.maxDrawdown),
        drawdown_peak: risk.drawdownPeak,
        drawdown_trough: risk.drawdownTrough,
        sharpe: str(risk.sharpe),
        sortino: str(risk.sortino),
        missing_days: twr.missingDays,
        days: twr.days.map((d) => ({
          date: d.date,
          daily_return: d.dailyReturn.toFixed(),
          cumulative_return: d.cumulativeReturn.toFixed(),
        })),
      }, null, 2));
      // The object's fields are fixed by the issue; what explains a null goes to stderr.
      if (mwr.reason) console.error(`note: mwr is null: ${mwr.reason}`);
      if (twr.zeroBaseDays.length) console.error(`note: return 0 by convention (BOD + BOD cash flow = 0) on ${twr.zeroBaseDays.join(', ')}`);
      return 0;
    }
    const lines = [
      `portfolio ${twr.portfolioId}: ${twr.from} to ${twr.to} (${twr.calendarDays} calendar days, ${twr.dayCount} with data), basis ${twr.basis}`,
      '',
      `  TWR                      ${pct(twr.twr)}`,
      `  TWR annualised           ${pct(twr.twrAnnualised)}${twr.calendarDays > 365 ? '' : '   (only for ranges longer than 365 days)'}`,
      `  MWR (annual rate)        ${pct(mwr.mwr)}${mwr.reason ? `   (${mwr.reason})` : ''}`,
      `  MWR annualised           ${pct(mwr.mwrAnnualised)}`,
      `  MWR over the range       ${pct(mwr.mwrPeriod)}${mwr.calendarDays >= 365 ? '   (only for ranges shorter than 365 days)' : ''}`,
      `  volatility (annualised)  ${pct(risk.volatility)}`,
      `  maximum drawdown         ${pct(risk.maxDrawdown)}${risk.drawdownTrough ? `   (peak ${risk.drawdownPeak}, trough ${risk.drawdownTrough})` : ''}`,
      `  Sharpe                   ${num(risk.sharpe)}`,
      `  Sortino                  ${num(risk.sortino)}`,
      `  risk-free rate           ${pct(risk.riskFreeRate)} a year`,
      '',
      `missing days (not current): ${twr.missingDays.length ? twr.missingDays.join(', ') : 'none'}`,
    ];
    if (twr.zeroBaseDays.length) lines.push(`return 0 by convention (BOD + BOD cash flow = 0): ${twr.zeroBaseDays.join(', ')}`);
    if (twr.days.length) {
      lines.push('', 'date          daily return       cumulative');
      for (const d of twr.days) {
        lines.push(`${d.date}  ${pct(d.dailyReturn).padStart(15)}  ${pct(d.cumulativeReturn).padStart(15)}${d.zeroBase ? '  (zero base)' : ''}`);
      }
    }
    out(lines.join('\n'));
    return 0;
  } catch (error) {
    const { message, exitCode } = explain(error);
    console.error(`portfolio-timeseries returns: ${message}`);
    return exitCode;
  } finally {
    await sql?.end();
  }
}
