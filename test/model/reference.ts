// A decimal.js reference model of contract section 3 (methodology, docs/contract.md) and of the
// readiness rules of section 4 that decide WHICH days have rows. Written from the contract text
// only, never from sql/: it is the oracle of the randomised tests. It takes the final contents of
// the contract tables and returns every row the engine must have written, plus why each other
// declared day has none.
//
// Dates are ISO strings ('YYYY-MM-DD'), so string order is date order.
import { Decimal } from '../../src/decimal.js';

// ---------- input: the final contents of the contract tables ----------

export interface PortfolioIn { portfolio_id: string; base_currency: string; open_date: string; close_date: string | null }
export interface InstrumentIn { security_id: string; currency: string; name: string | null }
export interface FxRateIn { from_currency: string; to_currency: string; rate_date: string; rate: Decimal }
export interface CashflowIn {
  transaction_id: string; portfolio_id: string; security_id: string | null; cashflow_date: string; epoch: number;
  amount: Decimal; currency: string; classification: string; timing: 'BOD' | 'EOD';
  is_position_flow: boolean; is_portfolio_flow: boolean;
}
export interface SnapshotIn {
  portfolio_id: string; security_id: string; date: string; epoch: number; quantity: Decimal;
  cost_basis: Decimal | null; cost_basis_local: Decimal | null; market_price: Decimal | null;
  market_value: Decimal | null; market_value_local: Decimal | null; valuation_status: string;
}
export interface ManifestIn { portfolio_id: string; aggregation_date: string; expected_count: number }
/**
 * The epoch history of one (portfolio, security) key. `starts` lists the epochs that were ever
 * current with the date they apply from: null (-infinity) for an epoch a position_state row was
 * INSERTED with, watermark_date + 1 for an epoch raised by UPDATE. Epoch 0 from -infinity is
 * implicit. Keys without an entry have current epoch 0.
 */
export interface EpochHistoryIn { portfolio_id: string; security_id: string; current: number; starts: { epoch: number; start: string | null }[] }

export interface ModelInput {
  portfolios: PortfolioIn[];
  instruments: InstrumentIn[];
  fx_rates: FxRateIn[];
  cashflows: CashflowIn[];
  snapshots: SnapshotIn[];
  manifest: ManifestIn[];
  epochs: EpochHistoryIn[];
}

// ---------- output ----------

export interface PositionRowOut {
  portfolio_id: string; security_id: string; date: string; epoch: number;
  bod_market_value: Decimal; bod_cashflow_position: Decimal; eod_cashflow_position: Decimal;
  bod_cashflow_portfolio: Decimal; eod_cashflow_portfolio: Decimal; eod_market_value: Decimal;
  fees: Decimal; quantity: Decimal; cost: Decimal;
}
export interface PortfolioRowOut {
  portfolio_id: string; date: string; epoch: number; bod_market_value: Decimal; bod_cashflow: Decimal;
  eod_cashflow: Decimal; eod_market_value: Decimal; fees: Decimal; position_count: number;
}
export type ModelDayState = 'computed' | 'waiting' | 'blocked' | 'waiting_previous_day';
export interface DayOut { portfolio_id: string; date: string; state: ModelDayState; reason: string | null }
export interface ModelOutput { positions: PositionRowOut[]; portfolios: PortfolioRowOut[]; days: DayOut[] }

// ---------- helpers ----------

const ZERO = new Decimal(0);
/** Final rounding: 10 decimal places, half away from zero (decimal.js ROUND_HALF_UP = PostgreSQL round). */
export const round10 = (d: Decimal): Decimal => d.toDecimalPlaces(10, Decimal.ROUND_HALF_UP);
const sum = (xs: Decimal[]): Decimal => xs.reduce((a, b) => a.plus(b), ZERO);

export function addDays(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

const key2 = (a: string, b: string): string => `${a}\u0000${b}`;

/**
 * Effective epoch of a key on date D: the highest epoch j <= current whose start date is <= D
 * (epoch 0 applies from -infinity; a key without history is at epoch 0).
 */
export function effectiveEpoch(history: EpochHistoryIn | undefined, date: string): number {
  if (!history) return 0;
  let best = 0;
  for (const { epoch, start } of history.starts) {
    if (epoch <= history.current && (start === null || start <= date) && epoch > best) best = epoch;
  }
  return best;
}

/** Section 3: a snapshot is unusable when either value is NULL or its status says it was not valued. */
function unvalued(s: SnapshotIn): boolean {
  return s.market_value === null || s.market_value_local === null
    || s.valuation_status === 'UNVALUED' || s.valuation_status === 'FAILED';
}

// ---------- the model ----------

export function referenceModel(input: ModelInput): ModelOutput {
  const portfolios = new Map(input.portfolios.map((p) => [p.portfolio_id, p]));
  const instruments = new Map(input.instruments.map((i) => [i.security_id, i]));
  const histories = new Map(input.epochs.map((h) => [key2(h.portfolio_id, h.security_id), h]));

  // FX per pair, sorted by date, for the as-of lookup.
  const fx = new Map<string, FxRateIn[]>();
  for (const r of input.fx_rates) {
    const k = key2(r.from_currency, r.to_currency);
    if (!fx.has(k)) fx.set(k, []);
    fx.get(k)!.push(r);
  }
  for (const list of fx.values()) list.sort((a, b) => (a.rate_date < b.rate_date ? -1 : 1));
  /** rate(c -> base, D): 1 for the base itself, else the latest rate_date <= D; undefined if none. */
  const rate = (from: string, base: string, date: string): Decimal | undefined => {
    if (from === base) return new Decimal(1);
    let found: Decimal | undefined;
    for (const r of fx.get(key2(from, base)) ?? []) {
      if (r.rate_date <= date) found = r.rate;
      else break;
    }
    return found;
  };

  // Only the snapshot at the key's effective epoch for its date counts; all others are ignored.
  const effectiveByDay = new Map<string, SnapshotIn[]>(); // (portfolio, date) -> snapshots
  const effectiveByKey = new Map<string, SnapshotIn[]>(); // (portfolio, security) -> by date
  for (const s of input.snapshots) {
    const ep = effectiveEpoch(histories.get(key2(s.portfolio_id, s.security_id)), s.date);
    if (s.epoch !== ep) continue;
    const dk = key2(s.portfolio_id, s.date);
    if (!effectiveByDay.has(dk)) effectiveByDay.set(dk, []);
    effectiveByDay.get(dk)!.push(s);
    const kk = key2(s.portfolio_id, s.security_id);
    if (!effectiveByKey.has(kk)) effectiveByKey.set(kk, []);
    effectiveByKey.get(kk)!.push(s);
  }
  for (const list of effectiveByKey.values()) list.sort((a, b) => (a.date < b.date ? -1 : 1));
  /** The BOD source: the key's effective snapshot on the latest date before D (any epoch). */
  const previousSnapshot = (s: SnapshotIn): SnapshotIn | undefined => {
    let found: SnapshotIn | undefined;
    for (const x of effectiveByKey.get(key2(s.portfolio_id, s.security_id)) ?? []) {
      if (x.date < s.date) found = x;
      else break;
    }
    return found;
  };

  // Cash flows per (portfolio, date): no epoch filter.
  const flowsByDay = new Map<string, CashflowIn[]>();
  for (const f of input.cashflows) {
    const k = key2(f.portfolio_id, f.cashflow_date);
    if (!flowsByDay.has(k)) flowsByDay.set(k, []);
    flowsByDay.get(k)!.push(f);
  }

  const manifestByPortfolio = new Map<string, ManifestIn[]>();
  for (const m of input.manifest) {
    if (!manifestByPortfolio.has(m.portfolio_id)) manifestByPortfolio.set(m.portfolio_id, []);
    manifestByPortfolio.get(m.portfolio_id)!.push(m);
  }

  const out: ModelOutput = { positions: [], portfolios: [], days: [] };

  for (const [portfolioId, declared] of [...manifestByPortfolio].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    declared.sort((a, b) => (a.aggregation_date < b.aggregation_date ? -1 : 1));
    // The EOD of the previous declared day's row; once a day has no row, every later day waits
    // for it (a portfolio day is computed only after the previous declared day is current).
    let previous: PortfolioRowOut | null = null;
    let held: string | null = null;
    for (const m of declared) {
      const date = m.aggregation_date;
      const day = (state: ModelDayState, reason: string | null) =>
        out.days.push({ portfolio_id: portfolioId, date, state, reason });
      if (held !== null) {
        day('waiting_previous_day', `previous declared day ${held} has no row`);
        continue;
      }
      const positions = (effectiveByDay.get(key2(portfolioId, date)) ?? [])
        .slice().sort((a, b) => (a.security_id < b.security_id ? -1 : 1));
      const flows = flowsByDay.get(key2(portfolioId, date)) ?? [];
      const verdict = checkDay(portfolioId, date, m.expected_count, positions, flows);
      if (verdict) {
        day(verdict.state, verdict.reason);
        held = date;
        continue;
      }
      const base = portfolios.get(portfolioId)!.base_currency;
      const r = (c: string): Decimal => rate(c, base, date)!; // presence checked by checkDay

      // Stage 1: one position row per effective snapshot.
      const posRows: PositionRowOut[] = [];
      let bodCf = ZERO, eodCf = ZERO, fees = ZERO;
      for (const s of positions) {
        const own = flows.filter((f) => f.security_id === s.security_id);
        const pick = (flag: 'is_position_flow' | 'is_portfolio_flow', timing: 'BOD' | 'EOD') =>
          sum(own.filter((f) => f[flag] && f.timing === timing).map((f) => f.amount));
        // Fees are EXPENSE flows that leave the portfolio; an EXPENSE that is only a position flow
        // (e.g. a tax paid inside a position) is not a fee, and withdrawals are never fees.
        const posFees = sum(own.filter((f) => f.classification === 'EXPENSE' && f.is_portfolio_flow).map((f) => f.amount.abs()));
        const prev = previousSnapshot(s);
        const q = s.quantity;
        const row: PositionRowOut = {
          portfolio_id: portfolioId, security_id: s.security_id, date,
          epoch: s.epoch, // == the effective epoch, by construction of effectiveByDay
          bod_market_value: round10(prev ? prev.market_value_local! : ZERO),
          bod_cashflow_position: round10(pick('is_position_flow', 'BOD')),
          eod_cashflow_position: round10(pick('is_position_flow', 'EOD')),
          bod_cashflow_portfolio: round10(pick('is_portfolio_flow', 'BOD')),
          eod_cashflow_portfolio: round10(pick('is_portfolio_flow', 'EOD')),
          eod_market_value: round10(s.market_value_local!),
          fees: round10(posFees),
          quantity: round10(q),
          cost: q.isZero() || s.cost_basis_local === null ? ZERO : round10(s.cost_basis_local.div(q)),
        };
        posRows.push(row);
        // Stage 2 sums the exact (unrounded) products; only the final value is rounded.
        const rt = r(instruments.get(s.security_id)!.currency);
        bodCf = bodCf.plus(pick('is_portfolio_flow', 'BOD').times(rt));
        eodCf = eodCf.plus(pick('is_portfolio_flow', 'EOD').times(rt));
        fees = fees.plus(posFees.times(rt));
      }
      // Portfolio-level flows (NULL security) in their own currency; without is_portfolio_flow
      // they count nowhere.
      for (const f of flows) {
        if (f.security_id !== null || !f.is_portfolio_flow) continue;
        const amount = f.amount.times(r(f.currency));
        if (f.timing === 'BOD') bodCf = bodCf.plus(amount);
        else eodCf = eodCf.plus(amount);
        if (f.classification === 'EXPENSE') fees = fees.plus(f.amount.abs().times(r(f.currency)));
      }
      const row: PortfolioRowOut = {
        portfolio_id: portfolioId, date, epoch: Math.max(0, ...positions.map((s) => s.epoch)),
        bod_market_value: previous ? previous.eod_market_value : ZERO,
        bod_cashflow: round10(bodCf), eod_cashflow: round10(eodCf),
        eod_market_value: round10(sum(positions.map((s) => s.market_value!))),
        fees: round10(fees), position_count: positions.length,
      };
      out.positions.push(...posRows);
      out.portfolios.push(row);
      previous = row;
      day('computed', null);
    }
  }
  return out;

  /** Why a complete-or-not declared day cannot be computed (section 3 "Blocked" and section 4), or null. */
  function checkDay(portfolioId: string, date: string, expected: number, positions: SnapshotIn[], flows: CashflowIn[]):
    { state: 'waiting' | 'blocked'; reason: string } | null {
    if (positions.length < expected) return { state: 'waiting', reason: `${positions.length} of ${expected}` };
    if (positions.length > expected) return { state: 'blocked', reason: `${positions.length} positions, ${expected} declared` };
    const portfolio = portfolios.get(portfolioId);
    if (!portfolio) return { state: 'blocked', reason: `unknown portfolio ${portfolioId}` };
    const base = portfolio.base_currency;
    const currencies = new Set<string>();
    const held = new Set<string>();
    for (const s of positions) {
      held.add(s.security_id);
      const instrument = instruments.get(s.security_id);
      if (!instrument) return { state: 'blocked', reason: `unknown instrument ${s.security_id}` };
      currencies.add(instrument.currency);
      if (unvalued(s)) return { state: 'blocked', reason: `unvalued snapshot ${s.security_id} ${s.date}` };
      const prev = previousSnapshot(s);
      if (prev && unvalued(prev)) return { state: 'blocked', reason: `unvalued BOD snapshot ${s.security_id} ${prev.date}` };
    }
    for (const f of flows) {
      if (f.security_id === null) {
        if (f.is_portfolio_flow) currencies.add(f.currency);
        continue;
      }
      // A flow on a security without a position that day would vanish from the totals.
      if (!held.has(f.security_id)) return { state: 'blocked', reason: `cash flow ${f.transaction_id}: no position in ${f.security_id}` };
      const instrument = instruments.get(f.security_id)!;
      if (f.currency !== instrument.currency) {
        return { state: 'blocked', reason: `cash flow ${f.transaction_id}: currency ${f.currency} != ${instrument.currency}` };
      }
    }
    // A rate is needed for every non-base currency in play, whatever the amounts.
    for (const c of [...currencies].sort()) {
      if (c !== base && rate(c, base, date) === undefined) return { state: 'blocked', reason: `no FX ${c}->${base} on or before ${date}` };
    }
    return null;
  }
}
