// Issue #3's model-based test, part 1: a small valid book and a seeded sequence of small
// transactions over every input kind, each routed to one of N sessions.
//
// Everything here is pure and deterministic from the seed. The generator keeps a simulated state
// that is exact for what decides VALIDITY of the next operation:
//   - every (portfolio, security) key belongs to one session: its position_state,
//     its snapshots and its security cash flows are only written by that session, in order, so the
//     key's epoch history, its positions and its flows are known when an operation is generated;
//   - NULL-security cash flows and manifest changes of a portfolio belong to the portfolio's session;
//   - each FX pair belongs to one session.
// What other sessions do concurrently only touches shared counters through relative updates
// (manifest expected_count +/- 1); the final repair seals every day, and the test reads the FINAL
// contents of the tables as the model's input, so the interleaving never has to be predicted.
import { Decimal } from '../../src/decimal.js';
import { Rng } from '../model/book.js';
import { addDays, effectiveEpoch, round10, type EpochHistoryIn } from '../model/reference.js';
import { TRANSACTION_TYPES, type TransactionType } from '../model/transaction-types.js';

export type Value = string | number | boolean | null;
/** One statement; `rows` is the row count it must affect (bookkeeping check), when known. */
export interface Stmt { text: string; params: Value[]; rows?: number }
/** An epoch that became current on a key: inserted with (start null) or raised by UPDATE (start watermark + 1). */
export interface EpochEvent { portfolio_id: string; security_id: string; epoch: number; start: string | null }

export const OP_KINDS = [
  'initial_load', 'value_update', 'value_update_range', 'ghost_update', 'ghost_delete', 'unvalue', 'revalue',
  'cf_insert_security', 'cf_insert_portfolio', 'cf_update', 'cf_delete',
  'fx_update', 'fx_backdate', 'fx_delete',
  'position_add', 'position_remove',
  'state_insert', 'epoch_raise', 'epoch_insert', 'epoch_snapshots', 'epoch_touch',
  'manifest_delete', 'manifest_miscount', 'manifest_seal',
  'instrument_cycle', 'instrument_recurrency', 'base_change', 'truncate_reload',
] as const;
export type OpKind = (typeof OP_KINDS)[number];

export interface Op {
  seq: number;
  kind: OpKind;
  session: number;
  label: string;
  stmts: Stmt[];
  /** Recorded (in commit order) when the transaction commits. */
  epochEvents: EpochEvent[];
}

export interface Scenario {
  seed: number;
  sessions: number;
  /** The initial book: transactions to run in order on one session, before the workers start. */
  initial: Op[];
  /** Every operation in generation order; run each session's subsequence in order. */
  ops: Op[];
  portfolios: { portfolio_id: string; base_currency: string }[];
  /** Every (portfolio, date) that ever had a manifest row or a snapshot: the repair seals them all. */
  dayUniverse: { portfolio_id: string; date: string }[];
  dates: string[];
}

export interface ScenarioOptions { seed: number; sessions?: number; ops?: number; portfolios?: number; days?: number; extraDays?: number }

// ---------- helpers ----------

function businessDays(from: string, count: number): string[] {
  const out: string[] = [];
  for (let d = from; out.length < count; d = addDays(d, 1)) {
    const dow = new Date(`${d}T00:00:00Z`).getUTCDay();
    if (dow !== 0 && dow !== 6) out.push(d);
  }
  return out;
}

function insert(table: string, rows: Record<string, Value>[], suffix = ''): Stmt {
  const cols = Object.keys(rows[0]!);
  const params: Value[] = [];
  const tuples = rows.map((r) => `(${cols.map((c) => { params.push(r[c] ?? null); return `$${params.length}`; }).join(', ')})`);
  return { text: `insert into ${table} (${cols.join(', ')}) values ${tuples.join(', ')}${suffix}`, params, rows: rows.length };
}

function update(table: string, set: Record<string, Value>, where: Record<string, Value>, rows?: number): Stmt {
  const params: Value[] = [];
  const p = (v: Value) => { params.push(v); return `$${params.length}`; };
  const sets = Object.entries(set).map(([c, v]) => `${c} = ${p(v)}`).join(', ');
  const conds = Object.entries(where).map(([c, v]) => `${c} = ${p(v)}`).join(' and ');
  return { text: `update ${table} set ${sets} where ${conds}`, params, ...(rows === undefined ? {} : { rows }) };
}

function del(table: string, where: Record<string, Value>, rows?: number): Stmt {
  const params: Value[] = [];
  const conds = Object.entries(where).map(([c, v]) => { params.push(v); return `${c} = $${params.length}`; }).join(' and ');
  return { text: `delete from ${table} where ${conds}`, params, ...(rows === undefined ? {} : { rows }) };
}

// ---------- the book's universe ----------

const CURRENCIES = ['USD', 'EUR', 'GBP'] as const;
/** Value of one unit in USD, the centre of the random rates. */
const USD_VALUE: Record<string, number> = { USD: 1, EUR: 1.09, GBP: 1.27 };
const INSTRUMENTS: { security_id: string; currency: string }[] = [
  { security_id: 'USD_A', currency: 'USD' }, { security_id: 'USD_B', currency: 'USD' },
  { security_id: 'EUR_A', currency: 'EUR' }, { security_id: 'EUR_B', currency: 'EUR' },
  { security_id: 'GBP_A', currency: 'GBP' }, { security_id: 'GBP_B', currency: 'GBP' },
  { security_id: 'CASH_USD', currency: 'USD' }, { security_id: 'CASH_EUR', currency: 'EUR' },
  { security_id: 'CASH_GBP', currency: 'GBP' },
];
const currencyOf = new Map(INSTRUMENTS.map((i) => [i.security_id, i.currency]));
const SECURITY_TYPES = TRANSACTION_TYPES.filter((t) => t.level === 'security');
const PORTFOLIO_TYPES = TRANSACTION_TYPES.filter((t) => t.level === 'portfolio');

interface Position { epoch: number; values: Record<string, Value> | null }
interface KeyState {
  p: string; s: string; currency: string; base: string; session: number;
  hasState: boolean;
  history: EpochHistoryIn;
  /** date -> the effective snapshot (epoch, and its values when known exactly). */
  positions: Map<string, Position>;
  /** `${date}|${epoch}` of snapshots that are NOT effective (older epochs). */
  ghosts: Set<string>;
  /** dates whose effective snapshot is currently unvalued (a revalue is scheduled). */
  unvalued: Set<string>;
  revalueScheduled: boolean;
}
interface Flow { id: string; p: string; s: string | null; date: string; session: number }
interface Followup { due: number; make: () => void }

export function generateScenario(options: ScenarioOptions): Scenario {
  const rng = new Rng(options.seed);
  const sessions = options.sessions ?? 3;
  const nOps = options.ops ?? 560;
  const nPortfolios = options.portfolios ?? 4;
  const nDays = options.days ?? 12;
  const extraDays = options.extraDays ?? 3;
  const dates = businessDays('2025-03-03', nDays + extraDays);
  const initialDates = dates.slice(0, nDays);
  const first = dates[0]!;

  const ops: Op[] = [];
  const initial: Op[] = [];
  let seq = 0;
  let flowSeq = 0;
  const emit = (kind: OpKind, session: number, label: string, stmts: Stmt[], epochEvents: EpochEvent[] = []): void => {
    if (stmts.length) ops.push({ seq: ++seq, kind, session, label, stmts, epochEvents });
  };

  // ---------- values ----------
  const rateCentre = (from: string, to: string) => USD_VALUE[from]! / USD_VALUE[to]!;
  const randomRate = (from: string, to: string): string => {
    const dp = rng.chance(0.3) ? rng.int(1, 4) : 10;
    return new Decimal(rateCentre(from, to)).times(new Decimal(1).plus(new Decimal(rng.next() - 0.5).times(0.04)))
      .toDecimalPlaces(dp, Decimal.ROUND_HALF_UP).toFixed();
  };
  const snapshotValues = (s: string, base: string): Record<string, Value> => {
    const c = currencyOf.get(s)!;
    const cash = s.startsWith('CASH_');
    let quantity: Decimal, price: Decimal;
    if (cash) {
      quantity = (rng.chance(0.1) ? rng.decimal(2e12, 10) : rng.money()).times(rng.chance(0.15) ? -1 : 1);
      price = new Decimal(1);
    } else {
      quantity = rng.chance(0.05) ? new Decimal(0) : rng.chance(0.1) ? new Decimal(rng.pick([2, -2]))
        : rng.chance(0.1) ? rng.decimal(1e9, 10) : rng.decimal(1e5);
      price = rng.decimal(1000, 10).plus('0.01');
    }
    const mvl = round10(quantity.times(price));
    const cbl = rng.chance(0.05) ? null : quantity.abs().eq(2) ? rng.decimal(1e6, 10)
      : round10(quantity.times(price).times(new Decimal(rng.int(50, 150)).div(100)));
    const rate = new Decimal(rateCentre(c, base)).toDecimalPlaces(6);
    return {
      quantity: quantity.toFixed(),
      cost_basis: cbl === null ? null : round10(cbl.times(rate)).toFixed(),
      cost_basis_local: cbl === null ? null : cbl.toFixed(),
      market_price: price.toFixed(),
      market_value: round10(mvl.times(rate)).toFixed(),
      market_value_local: mvl.toFixed(),
      valuation_status: rng.chance(0.85) ? 'VALUED_CURRENT' : 'VALUED_STALE',
    };
  };
  const flowRow = (t: TransactionType, p: string, s: string | null, date: string, currency: string): Record<string, Value> => ({
    transaction_id: `MB${String(++flowSeq).padStart(6, '0')}`, portfolio_id: p, security_id: s, cashflow_date: date,
    epoch: rng.int(0, 2), amount: (rng.chance(0.04) ? new Decimal(0) : rng.money().times(t.sign)).toFixed(), currency,
    classification: t.classification, timing: t.timing, is_position_flow: t.is_position_flow, is_portfolio_flow: t.is_portfolio_flow,
  });

  // ---------- the initial book ----------
  const portfolios = Array.from({ length: nPortfolios }, (_, i) => ({
    portfolio_id: `MP${i + 1}`, base_currency: i % 2 === 0 ? 'USD' : 'EUR',
  }));
  // Routing: keys, portfolios and FX pairs are dealt round-robin to the sessions (in a seeded
  // order), so every session has work and a portfolio's keys are spread over all of them.
  const pSessions = new Map(rng.shuffle(portfolios.map((p) => p.portfolio_id)).map((p, i) => [p, i % sessions]));
  const pSession = (p: string) => pSessions.get(p)!;
  let keyDeal = rng.int(0, sessions - 1);
  const keys = new Map<string, KeyState>();
  const flows = new Map<string, Flow>();
  const manifestDays = new Set<string>(); // every (p|date) that ever had a manifest row (for the repair)
  const snapshotDays = new Set<string>();

  const initRows: Record<string, Record<string, Value>[]> = {
    portfolios: [], instruments: [], fx_rates: [], position_state: [], daily_position_snapshots: [], cashflows: [], daily_aggregation_manifest: [],
  };
  const initEvents: EpochEvent[] = [];
  for (const i of INSTRUMENTS) initRows.instruments!.push({ security_id: i.security_id, currency: i.currency, name: rng.chance(0.5) ? `Security ${i.security_id}` : null });

  // FX: every currency into both bases, on most business days (the first day always).
  const fx = new Map<string, Map<string, string>>(); // 'EUR>USD' -> date -> rate
  const pairs: [string, string][] = [];
  for (const to of new Set(portfolios.map((p) => p.base_currency))) {
    for (const from of CURRENCIES) if (from !== to) pairs.push([from, to]);
  }
  const pairSessions = new Map(pairs.map(([from, to], i) => [`${from}>${to}`, (i + 1) % sessions]));
  const pairSession = (from: string, to: string) => pairSessions.get(`${from}>${to}`)!;
  for (const [from, to] of pairs) {
    const m = new Map<string, string>();
    fx.set(`${from}>${to}`, m);
    dates.forEach((d, i) => {
      if (i === 0 || rng.chance(0.75)) {
        const rate = randomRate(from, to);
        m.set(d, rate);
        initRows.fx_rates!.push({ from_currency: from, to_currency: to, rate_date: d, rate });
      }
    });
  }

  for (const pf of portfolios) {
    const p = pf.portfolio_id;
    initRows.portfolios!.push({ portfolio_id: p, base_currency: pf.base_currency, open_date: first, close_date: null });
    // Universe: the base cash account, one security of each currency, two more; 4-5 held at first.
    const perCurrency = CURRENCIES.map((c) => rng.pick(INSTRUMENTS.filter((i) => i.currency === c && !i.security_id.startsWith('CASH_'))).security_id);
    const rest = rng.shuffle(INSTRUMENTS.map((i) => i.security_id).filter((s) => s !== `CASH_${pf.base_currency}` && !perCurrency.includes(s)));
    const universe = [`CASH_${pf.base_currency}`, ...perCurrency, ...rest.slice(0, 2)];
    const held = new Set([`CASH_${pf.base_currency}`, ...perCurrency, ...(rng.chance(0.6) ? [rest[0]!] : [])]);
    const counts = new Map<string, number>(initialDates.map((d) => [d, 0]));
    for (const s of universe) {
      const k: KeyState = {
        p, s, currency: currencyOf.get(s)!, base: pf.base_currency, session: keyDeal++ % sessions,
        hasState: false, history: { portfolio_id: p, security_id: s, current: 0, starts: [] },
        positions: new Map(), ghosts: new Set(), unvalued: new Set(), revalueScheduled: false,
      };
      keys.set(`${p}|${s}`, k);
      if (!held.has(s)) continue;
      if (rng.chance(0.3)) {
        const epoch = rng.chance(0.3) ? 1 : 0;
        k.hasState = true;
        k.history.current = epoch;
        k.history.starts.push({ epoch, start: null });
        initEvents.push({ portfolio_id: p, security_id: s, epoch, start: null });
        initRows.position_state!.push({ portfolio_id: p, security_id: s, epoch, watermark_date: rng.chance(0.5) ? rng.pick(initialDates) : null, status: 'CURRENT' });
      }
      const a = rng.chance(0.6) ? 0 : rng.int(0, nDays - 2);
      const b = rng.chance(0.6) ? nDays - 1 : rng.int(a, nDays - 1);
      for (let i = a; i <= b; i++) {
        const d = initialDates[i]!;
        const values = snapshotValues(s, pf.base_currency);
        const epoch = k.history.current;
        k.positions.set(d, { epoch, values });
        snapshotDays.add(`${p}|${d}`);
        initRows.daily_position_snapshots!.push({ portfolio_id: p, security_id: s, date: d, epoch, ...values });
        counts.set(d, counts.get(d)! + 1);
        if (rng.chance(0.25)) {
          const row = flowRow(rng.pick(SECURITY_TYPES), p, s, d, k.currency);
          flows.set(row.transaction_id as string, { id: row.transaction_id as string, p, s, date: d, session: k.session });
          initRows.cashflows!.push(row);
        }
      }
    }
    for (const d of initialDates) {
      if (rng.chance(0.3)) {
        const t = rng.pick(PORTFOLIO_TYPES);
        const row = flowRow(t, p, null, d, t.is_portfolio_flow ? rng.pick(CURRENCIES) : rng.pick(['USD', 'EUR', 'GBP', 'JPY', 'CHF']));
        flows.set(row.transaction_id as string, { id: row.transaction_id as string, p, s: null, date: d, session: pSession(p) });
        initRows.cashflows!.push(row);
      }
      initRows.daily_aggregation_manifest!.push({ portfolio_id: p, aggregation_date: d, expected_count: counts.get(d)! });
      manifestDays.add(`${p}|${d}`);
    }
  }
  for (const [table, rows] of Object.entries(initRows)) {
    for (let i = 0; i < rows.length; i += 200) {
      initial.push({ seq: 0, kind: 'initial_load', session: 0, label: `initial ${table}`, stmts: [insert(table, rows.slice(i, i + 200))],
        epochEvents: table === 'position_state' && i === 0 ? initEvents : [] });
    }
  }

  // ---------- operations ----------
  const allKeys = [...keys.values()];
  const followups: Followup[] = [];
  const later = (due: number, make: () => void) => followups.push({ due, make });

  // Each instrument's changes come from one session, so a deletion and its re-insertion (or a
  // later cycle of the same instrument) commit in generation order.
  const instrumentSession = (id: string) => INSTRUMENTS.findIndex((x) => x.security_id === id) % sessions;
  const busyInstruments = new Set<string>();
  const busyPortfolios = new Set<string>();
  const pickKey = (filter: (k: KeyState) => boolean): KeyState | undefined => {
    const list = allKeys.filter(filter);
    return list.length ? rng.pick(list) : undefined;
  };
  const snapshotWhere = (k: KeyState, date: string, epoch: number) => ({ portfolio_id: k.p, security_id: k.s, date, epoch });
  const insertSnapshots = (k: KeyState, items: { date: string; epoch: number; values: Record<string, Value> }[]): Stmt =>
    insert('daily_position_snapshots', items.map((x) => ({ portfolio_id: k.p, security_id: k.s, date: x.date, epoch: x.epoch, ...x.values })));
  const valuedAgain = (k: KeyState, date: string): Stmt => {
    const pos = k.positions.get(date)!;
    const values = snapshotValues(k.s, k.base);
    pos.values = values;
    return update('daily_position_snapshots', values, snapshotWhere(k, date, pos.epoch), 1);
  };
  const scheduleRevalue = (k: KeyState, now: number) => {
    if (k.revalueScheduled) return;
    k.revalueScheduled = true;
    later(now + rng.int(3, 80), () => {
      k.revalueScheduled = false;
      const dates = [...k.unvalued].sort();
      k.unvalued.clear();
      emit('revalue', k.session, `${k.p}/${k.s} ${dates.join(',')}`, dates.map((d) => valuedAgain(k, d)));
    });
  };

  /** New-epoch snapshots for every held date from `start` (null: all dates); old ones become ghosts. */
  const resnapshot = (k: KeyState, epoch: number, start: string | null) => {
    const items: { date: string; epoch: number; values: Record<string, Value> }[] = [];
    for (const [d, pos] of [...k.positions].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (start !== null && d < start) continue;
      // Sometimes the new epoch restates the same values (an unchanged EOD must stop the cascade).
      const values = pos.values && !k.unvalued.has(d) && rng.chance(0.3) ? { ...pos.values } : snapshotValues(k.s, k.base);
      k.ghosts.add(`${d}|${pos.epoch}`);
      k.unvalued.delete(d);
      k.positions.set(d, { epoch, values });
      items.push({ date: d, epoch, values });
    }
    return items;
  };

  const makers: Record<string, [number, (i: number) => boolean]> = {
    value_update: [12, () => {
      const k = pickKey((x) => x.positions.size > 0);
      if (!k) return false;
      const d = rng.pick([...k.positions.keys()]);
      const pos = k.positions.get(d)!;
      const v = snapshotValues(k.s, k.base);
      let set: Record<string, Value>;
      if (rng.chance(0.5) && pos.values && !k.unvalued.has(d)) {
        set = { market_value: v.market_value!, market_value_local: v.market_value_local! };
        pos.values = { ...pos.values, ...set };
      } else {
        set = v;
        pos.values = v;
      }
      k.unvalued.delete(d);
      emit('value_update', k.session, `${k.p}/${k.s} ${d} e${pos.epoch}`, [update('daily_position_snapshots', set, snapshotWhere(k, d, pos.epoch), 1)]);
      return true;
    }],
    value_update_range: [3, () => {
      // One statement over several snapshots of a key, ignored ones included.
      const k = pickKey((x) => x.positions.size > 1);
      if (!k) return false;
      const held = [...k.positions.keys()].sort();
      const a = rng.int(0, held.length - 2);
      const from = held[a]!, to = held[rng.int(a + 1, held.length - 1)]!;
      const delta = rng.decimal(1000, rng.int(0, 10)).toFixed();
      for (const [d, pos] of k.positions) if (d >= from && d <= to) pos.values = null; // no longer known exactly
      emit('value_update_range', k.session, `${k.p}/${k.s} ${from}..${to}`, [{
        text: `update daily_position_snapshots set market_value = market_value + $1, market_value_local = market_value_local - $1
               where portfolio_id = $2 and security_id = $3 and date between $4 and $5`,
        params: [delta, k.p, k.s, from, to],
      }]);
      return true;
    }],
    ghost_update: [2, () => {
      const k = pickKey((x) => x.ghosts.size > 0);
      if (!k) return false;
      const [d, e] = rng.pick([...k.ghosts]).split('|') as [string, string];
      const v = snapshotValues(k.s, k.base);
      if (rng.chance(0.4)) { v.valuation_status = 'UNVALUED'; v.market_value = null; }
      emit('ghost_update', k.session, `${k.p}/${k.s} ${d} e${e}`, [update('daily_position_snapshots', v, snapshotWhere(k, d, Number(e)), 1)]);
      return true;
    }],
    ghost_delete: [1, () => {
      const k = pickKey((x) => x.ghosts.size > 0);
      if (!k) return false;
      const g = rng.pick([...k.ghosts]);
      const [d, e] = g.split('|') as [string, string];
      k.ghosts.delete(g);
      emit('ghost_delete', k.session, `${k.p}/${k.s} ${d} e${e}`, [del('daily_position_snapshots', snapshotWhere(k, d, Number(e)), 1)]);
      return true;
    }],
    unvalue: [4, (i) => {
      const k = pickKey((x) => [...x.positions.keys()].some((d) => !x.unvalued.has(d)));
      if (!k) return false;
      const d = rng.pick([...k.positions.keys()].filter((x) => !k.unvalued.has(x)));
      const pos = k.positions.get(d)!;
      const how = rng.int(0, 3);
      const set: Record<string, Value> = how === 0 ? { valuation_status: 'UNVALUED' } : how === 1 ? { valuation_status: 'FAILED' }
        : how === 2 ? { market_value: null } : { market_value_local: null, valuation_status: 'UNVALUED' };
      pos.values = pos.values ? { ...pos.values, ...set } : null;
      k.unvalued.add(d);
      emit('unvalue', k.session, `${k.p}/${k.s} ${d} e${pos.epoch} ${JSON.stringify(set)}`, [update('daily_position_snapshots', set, snapshotWhere(k, d, pos.epoch), 1)]);
      scheduleRevalue(k, i);
      return true;
    }],
    cf_insert_security: [9, () => {
      const k = pickKey((x) => x.positions.size > 0);
      if (!k) return false;
      const d = rng.pick([...k.positions.keys()]);
      const rows = Array.from({ length: rng.int(1, 2) }, () => flowRow(rng.pick(SECURITY_TYPES), k.p, k.s, d, k.currency));
      for (const r of rows) flows.set(r.transaction_id as string, { id: r.transaction_id as string, p: k.p, s: k.s, date: d, session: k.session });
      emit('cf_insert_security', k.session, `${k.p}/${k.s} ${d} ${rows.map((r) => r.transaction_id).join(',')}`, [insert('cashflows', rows)]);
      return true;
    }],
    cf_insert_portfolio: [5, () => {
      const pf = rng.pick(portfolios);
      const d = rng.pick(dates);
      const rows = Array.from({ length: rng.int(1, 2) }, () => {
        const t = rng.pick(PORTFOLIO_TYPES);
        return flowRow(t, pf.portfolio_id, null, d, t.is_portfolio_flow ? rng.pick(CURRENCIES) : rng.pick(['USD', 'EUR', 'GBP', 'JPY', 'CHF']));
      });
      const session = pSession(pf.portfolio_id);
      for (const r of rows) flows.set(r.transaction_id as string, { id: r.transaction_id as string, p: pf.portfolio_id, s: null, date: d, session });
      emit('cf_insert_portfolio', session, `${pf.portfolio_id} ${d} ${rows.map((r) => r.transaction_id).join(',')}`, [insert('cashflows', rows)]);
      return true;
    }],
    cf_update: [3, () => {
      if (!flows.size) return false;
      const f = rng.pick([...flows.values()]);
      const t = rng.pick(f.s === null ? PORTFOLIO_TYPES.filter((x) => x.is_portfolio_flow) : SECURITY_TYPES);
      const set: Record<string, Value> = { amount: rng.money().times(t.sign).toFixed(), classification: t.classification, timing: t.timing,
        is_position_flow: t.is_position_flow, is_portfolio_flow: t.is_portfolio_flow };
      if (f.s === null) set.currency = rng.pick(CURRENCIES);
      emit('cf_update', f.session, `${f.id}`, [update('cashflows', set, { transaction_id: f.id }, 1)]);
      return true;
    }],
    cf_delete: [7, () => {
      if (!flows.size) return false;
      const f = rng.pick([...flows.values()]);
      const more = [...flows.values()].filter((x) => x.id !== f.id && x.session === f.session && x.p === f.p && x.s === f.s);
      const ids = [f.id, ...(more.length && rng.chance(0.3) ? [rng.pick(more).id] : [])];
      for (const id of ids) flows.delete(id);
      emit('cf_delete', f.session, ids.join(','), [{
        text: `delete from cashflows where transaction_id in (${ids.map((_, j) => `$${j + 1}`).join(', ')})`, params: ids, rows: ids.length,
      }]);
      return true;
    }],
    fx_update: [7, () => {
      const [from, to] = rng.pick(pairs);
      const m = fx.get(`${from}>${to}`)!;
      const d = rng.pick([...m.keys()]);
      const rate = randomRate(from, to);
      m.set(d, rate);
      emit('fx_update', pairSession(from, to), `${from}->${to} ${d} ${rate}`,
        [update('fx_rates', { rate }, { from_currency: from, to_currency: to, rate_date: d }, 1)]);
      return true;
    }],
    fx_backdate: [5, () => {
      const [from, to] = rng.pick(pairs);
      const m = fx.get(`${from}>${to}`)!;
      // Any calendar day of the period (weekends too), or a few days before it.
      const candidates: string[] = [];
      for (let d = addDays(first, -4); d <= dates[dates.length - 1]!; d = addDays(d, 1)) if (!m.has(d)) candidates.push(d);
      if (!candidates.length) return false;
      const d = rng.pick(candidates);
      const rate = randomRate(from, to);
      m.set(d, rate);
      emit('fx_backdate', pairSession(from, to), `${from}->${to} ${d} ${rate}`,
        [insert('fx_rates', [{ from_currency: from, to_currency: to, rate_date: d, rate }])]);
      return true;
    }],
    fx_delete: [2, () => {
      const [from, to] = rng.pick(pairs);
      const m = fx.get(`${from}>${to}`)!;
      // Keep a rate on or before the first day: every day keeps an as-of rate.
      const early = [...m.keys()].filter((d) => d <= first);
      const candidates = [...m.keys()].filter((d) => d > first || early.length > 1);
      if (!candidates.length) return false;
      const d = rng.pick(candidates);
      m.delete(d);
      emit('fx_delete', pairSession(from, to), `${from}->${to} ${d}`,
        [del('fx_rates', { from_currency: from, to_currency: to, rate_date: d }, 1)]);
      return true;
    }],
    position_add: [9, () => {
      const k = pickKey((x) => x.positions.size < dates.length);
      if (!k) return false;
      const d = rng.pick(dates.filter((x) => !k.positions.has(x)));
      const epoch = effectiveEpoch(k.history, d);
      const values = snapshotValues(k.s, k.base);
      k.positions.set(d, { epoch, values });
      snapshotDays.add(`${k.p}|${d}`);
      manifestDays.add(`${k.p}|${d}`);
      const stmts = [
        insertSnapshots(k, [{ date: d, epoch, values }]),
        insert('daily_aggregation_manifest', [{ portfolio_id: k.p, aggregation_date: d, expected_count: 1 }],
          ' on conflict (portfolio_id, aggregation_date) do update set expected_count = daily_aggregation_manifest.expected_count + 1'),
      ];
      emit('position_add', k.session, `${k.p}/${k.s} ${d} e${epoch}`, rng.chance(0.5) ? stmts : stmts.reverse());
      return true;
    }],
    position_remove: [7, () => {
      const k = pickKey((x) => x.positions.size > 0);
      if (!k) return false;
      const d = rng.pick([...k.positions.keys()]);
      const pos = k.positions.get(d)!;
      k.positions.delete(d);
      k.unvalued.delete(d);
      // Its cash flows go too (a flow on a security without a position would block the day).
      const own = [...flows.values()].filter((f) => f.p === k.p && f.s === k.s && f.date === d);
      for (const f of own) flows.delete(f.id);
      const stmts = [
        del('daily_position_snapshots', snapshotWhere(k, d, pos.epoch), 1),
        ...(own.length ? [del('cashflows', { portfolio_id: k.p, security_id: k.s, cashflow_date: d }, own.length)] : []),
        { text: `update daily_aggregation_manifest set expected_count = expected_count - 1
                 where portfolio_id = $1 and aggregation_date = $2 and expected_count > 0`, params: [k.p, d] },
      ];
      emit('position_remove', k.session, `${k.p}/${k.s} ${d} e${pos.epoch}`, rng.chance(0.5) ? stmts : [stmts[stmts.length - 1]!, ...stmts.slice(0, -1)]);
      return true;
    }],
    epoch_raise: [6, () => {
      const k = pickKey((x) => x.positions.size > 0 || rng.chance(0.2));
      if (!k) return false;
      const stmts: Stmt[] = [];
      const events: EpochEvent[] = [];
      if (!k.hasState) {
        k.hasState = true;
        k.history.starts.push({ epoch: 0, start: null });
        const st = insert('position_state', [{ portfolio_id: k.p, security_id: k.s, epoch: 0, watermark_date: rng.chance(0.5) ? rng.pick(dates) : null, status: 'CURRENT' }]);
        const ev = { portfolio_id: k.p, security_id: k.s, epoch: 0, start: null };
        if (rng.chance(0.3)) emit('state_insert', k.session, `${k.p}/${k.s} e0`, [st], [ev]);
        else { stmts.push(st); events.push(ev); }
      }
      const epoch = k.history.current + rng.int(1, 2);
      const watermark = addDays(first, rng.int(-3, 24));
      const start = addDays(watermark, 1);
      stmts.push(update('position_state', { epoch, watermark_date: watermark, status: 'REPROCESSING' }, { portfolio_id: k.p, security_id: k.s }, 1));
      events.push({ portfolio_id: k.p, security_id: k.s, epoch, start });
      k.history.current = epoch;
      k.history.starts.push({ epoch, start });
      const items = resnapshot(k, epoch, start);
      const label = `${k.p}/${k.s} -> e${epoch} from ${start} (${items.length} new snapshots)`;
      if (items.length && rng.chance(0.5)) {
        emit('epoch_raise', k.session, label, [...stmts, insertSnapshots(k, items)], events);
      } else {
        // The new-epoch snapshots follow in later transactions of the same session (maybe two).
        emit('epoch_raise', k.session, label, stmts, events);
        const cut = items.length > 1 && rng.chance(0.4) ? rng.int(1, items.length - 1) : items.length;
        for (const part of [items.slice(0, cut), items.slice(cut)]) {
          if (part.length) emit('epoch_snapshots', k.session, `${k.p}/${k.s} e${epoch} ${part.map((x) => x.date).join(',')}`, [insertSnapshots(k, part)]);
        }
      }
      return true;
    }],
    epoch_insert: [1, () => {
      // A position_state row inserted at an epoch above 0: that epoch applies to every date.
      const k = pickKey((x) => !x.hasState);
      if (!k) return false;
      const epoch = rng.int(1, 2);
      k.hasState = true;
      k.history.current = epoch;
      k.history.starts.push({ epoch, start: null });
      const items = resnapshot(k, epoch, null);
      const stmts = [insert('position_state', [{ portfolio_id: k.p, security_id: k.s, epoch, watermark_date: null, status: 'REPROCESSING' }])];
      if (items.length) stmts.push(insertSnapshots(k, items));
      emit('epoch_insert', k.session, `${k.p}/${k.s} e${epoch} (${items.length} snapshots)`, stmts,
        [{ portfolio_id: k.p, security_id: k.s, epoch, start: null }]);
      return true;
    }],
    epoch_touch: [2, () => {
      // Status and watermark change, epoch unchanged: no new epoch starts.
      const k = pickKey((x) => x.hasState);
      if (!k) return false;
      emit('epoch_touch', k.session, `${k.p}/${k.s} stays e${k.history.current}`, [update('position_state',
        { status: rng.pick(['CURRENT', 'REPROCESSING']), watermark_date: rng.chance(0.2) ? null : rng.pick(dates), epoch: k.history.current },
        { portfolio_id: k.p, security_id: k.s }, 1)]);
      return true;
    }],
    manifest_delete: [2, (i) => {
      const pf = rng.pick(portfolios);
      const d = rng.pick(dates);
      const session = pSession(pf.portfolio_id);
      emit('manifest_delete', session, `${pf.portfolio_id} ${d}`, [del('daily_aggregation_manifest', { portfolio_id: pf.portfolio_id, aggregation_date: d })]);
      later(i + rng.int(5, 100), () => emit('manifest_seal', session, `${pf.portfolio_id} ${d} (re-declared)`,
        [{ text: 'select seal_portfolio_day($1, $2::date)', params: [pf.portfolio_id, d] }]));
      return true;
    }],
    manifest_miscount: [2, (i) => {
      // A wrong count for a while (waiting, or more positions than declared), then sealed.
      const pf = rng.pick(portfolios);
      const d = rng.pick(dates);
      const session = pSession(pf.portfolio_id);
      const delta = rng.pick([1, -1, 2]);
      emit('manifest_miscount', session, `${pf.portfolio_id} ${d} ${delta > 0 ? '+' : ''}${delta}`, [{
        text: `update daily_aggregation_manifest set expected_count = greatest(expected_count + $1::int, 0)
               where portfolio_id = $2 and aggregation_date = $3`, params: [delta, pf.portfolio_id, d],
      }]);
      later(i + rng.int(3, 60), () => emit('manifest_seal', session, `${pf.portfolio_id} ${d} (recount)`,
        [{ text: 'select seal_portfolio_day($1, $2::date)', params: [pf.portfolio_id, d] }]));
      return true;
    }],
    manifest_seal: [2, () => {
      const pf = rng.pick(portfolios);
      const d = rng.pick(dates);
      manifestDays.add(`${pf.portfolio_id}|${d}`);
      emit('manifest_seal', pSession(pf.portfolio_id), `${pf.portfolio_id} ${d}`,
        [{ text: 'select seal_portfolio_day($1, $2::date)', params: [pf.portfolio_id, d] }]);
      return true;
    }],
    // Reference data written beside the snapshots, flows and manifests of the same days, from a
    // session that does not own those keys: the days go blocked or change, and must end exact.
    instrument_cycle: [2, (i) => {
      // An instrument deleted for a while (its days blocked: unknown instrument), then inserted again.
      const free = INSTRUMENTS.filter((x) => !busyInstruments.has(x.security_id));
      if (!free.length) return false;
      const ins = rng.pick(free);
      busyInstruments.add(ins.security_id);
      const session = instrumentSession(ins.security_id);
      emit('instrument_cycle', session, `${ins.security_id} deleted`, [del('instruments', { security_id: ins.security_id }, 1)]);
      later(i + rng.int(3, 60), () => {
        busyInstruments.delete(ins.security_id);
        emit('instrument_cycle', session, `${ins.security_id} inserted again`,
          [insert('instruments', [{ security_id: ins.security_id, currency: ins.currency, name: null }])]);
      });
      return true;
    }],
    instrument_recurrency: [1, (i) => {
      // An instrument re-currencied for a while (its flows mismatch, its FX changes), then back.
      const free = INSTRUMENTS.filter((x) => !busyInstruments.has(x.security_id));
      if (!free.length) return false;
      const ins = rng.pick(free);
      busyInstruments.add(ins.security_id);
      const session = instrumentSession(ins.security_id);
      const other = rng.pick(CURRENCIES.filter((c) => c !== ins.currency));
      emit('instrument_recurrency', session, `${ins.security_id} ${ins.currency} -> ${other}`,
        [update('instruments', { currency: other }, { security_id: ins.security_id }, 1)]);
      later(i + rng.int(3, 60), () => {
        busyInstruments.delete(ins.security_id);
        emit('instrument_recurrency', session, `${ins.security_id} back to ${ins.currency}`,
          [update('instruments', { currency: ins.currency }, { security_id: ins.security_id }, 1)]);
      });
      return true;
    }],
    base_change: [2, (i) => {
      // A portfolio re-based to the other base currency for a while (FX exists into both), then back.
      const free = portfolios.filter((x) => !busyPortfolios.has(x.portfolio_id));
      if (!free.length) return false;
      const pf = rng.pick(free);
      busyPortfolios.add(pf.portfolio_id);
      // Not the portfolio's own session (that one writes its manifests and flows), but always the
      // same one, so that the change and its undoing commit in that order.
      const session = (pSession(pf.portfolio_id) + 1) % sessions;
      const other = pf.base_currency === 'USD' ? 'EUR' : 'USD';
      emit('base_change', session, `${pf.portfolio_id} ${pf.base_currency} -> ${other}`,
        [update('portfolios', { base_currency: other }, { portfolio_id: pf.portfolio_id }, 1)]);
      later(i + rng.int(3, 60), () => {
        busyPortfolios.delete(pf.portfolio_id);
        emit('base_change', session, `${pf.portfolio_id} back to ${pf.base_currency}`,
          [update('portfolios', { base_currency: pf.base_currency }, { portfolio_id: pf.portfolio_id }, 1)]);
      });
      return true;
    }],
    truncate_reload: [1, () => {
      // TRUNCATE and reload of a whole input table in one transaction (what a nightly reload does).
      // The lock comes first, so the copy holds every committed row.
      const table = rng.pick(['fx_rates', 'cashflows', 'daily_aggregation_manifest', 'instruments']);
      emit('truncate_reload', rng.int(0, sessions - 1), table, [
        { text: `lock table ${table} in access exclusive mode`, params: [] },
        { text: `create temp table reload_keep on commit drop as select * from ${table}`, params: [] },
        { text: `truncate ${table}`, params: [] },
        { text: `insert into ${table} select * from reload_keep`, params: [] },
      ]);
      return true;
    }],
  };
  const weighted = Object.entries(makers).flatMap(([name, [w]]) => Array<string>(w).fill(name));

  const runDue = (i: number) => {
    for (let j = 0; j < followups.length;) {
      if (followups[j]!.due <= i) followups.splice(j, 1)[0]!.make();
      else j++;
    }
  };
  for (let i = 0; i < nOps; i++) {
    runDue(i);
    for (let tries = 0; tries < 50; tries++) if (makers[rng.pick(weighted)]![1](i)) break;
  }
  runDue(Infinity);

  const dayUniverse = [...new Set([...manifestDays, ...snapshotDays])].sort().map((x) => {
    const [portfolio_id, date] = x.split('|') as [string, string];
    return { portfolio_id, date };
  });
  return { seed: options.seed, sessions, initial, ops, portfolios, dayUniverse, dates };
}
