// A seeded random book: portfolios in several base currencies, instruments in several currencies,
// daily FX with gaps, positions over business days with epoch raises, cash flows of every
// transaction type, manifests, and (optionally) the faults of contract section 3 "Blocked". It
// returns the rows a producer would insert and the same data as the reference model's input.
import { Decimal } from '../../src/decimal.js';
import {
  addDays, effectiveEpoch, round10,
  type CashflowIn, type EpochHistoryIn, type FxRateIn, type InstrumentIn, type ManifestIn, type ModelInput,
  type PortfolioIn, type SnapshotIn,
} from './reference.js';
import { TRANSACTION_TYPES, type TransactionType } from './transaction-types.js';

// ---------- seeded PRNG ----------

/** mulberry32: tiny, fast, good enough for test data, and reproducible from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** SEED from the environment, else a random one (print it so a failure can be replayed). */
export function seedFromEnv(): number {
  const env = process.env.SEED;
  return env !== undefined && env !== '' ? Number(env) >>> 0 : Math.floor(Math.random() * 2 ** 32) >>> 0;
}

export class Rng {
  readonly next: () => number;
  constructor(seed: number) { this.next = mulberry32(seed); }
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.next() * xs.length)]!; }
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }
  /** A non-negative decimal below `maxInt` with `dp` random decimals (exact: built as digits, not a float). */
  decimal(maxInt: number, dp = this.int(0, 10)): Decimal {
    const int = Math.floor(this.next() * maxInt);
    let frac = '';
    for (let i = 0; i < dp; i++) frac += String(this.int(0, 9));
    return new Decimal(dp ? `${int}.${frac}` : String(int));
  }
  /** A money-like magnitude: mostly ordinary, sometimes around 10^12, always <= 10 decimals. */
  money(): Decimal {
    if (this.chance(0.1)) return this.decimal(2e12, 10);
    if (this.chance(0.05)) return this.decimal(10, 10);
    return this.decimal(1e6);
  }
}

// ---------- rows to insert ----------

export type Value = string | number | boolean | null;
export type TableName = 'portfolios' | 'instruments' | 'fx_rates' | 'cashflows' | 'daily_position_snapshots' | 'daily_aggregation_manifest';
/**
 * `phase` says when a row may arrive for the strict never-partial check: 'reference' rows
 * (everything a day's value depends on besides its own declared-day snapshots) first, then
 * 'empty_day' (manifests with expected_count 0: such a day is complete the moment it is
 * declared, so it must not be declared before the earlier days are), then 'snapshot' rows,
 * 'late' rows last. A fully shuffled load ignores it.
 */
export type Phase = 'reference' | 'empty_day' | 'snapshot' | 'late';
export const PHASES: readonly Phase[] = ['reference', 'empty_day', 'snapshot', 'late'];
export interface InsertRow { table: TableName; phase: Phase; values: Record<string, Value> }
/** position_state writes for one key, to be applied in order before the load. */
export type EpochOp =
  | { kind: 'insert'; portfolio_id: string; security_id: string; epoch: number; watermark_date: string | null; status: string }
  | { kind: 'update'; portfolio_id: string; security_id: string; epoch: number; watermark_date: string; status: string };

export type Fault =
  | 'fx' | 'unvalued' | 'waiting' | 'unknown_instrument' // hold whatever the arrival order
  | 'cf_currency' | 'cf_no_position' | 'overcount' | 'bod_unvalued' // only with the phased load
  | 'unknown_portfolio';
const ORDER_FREE_FAULTS: Fault[] = ['fx', 'unvalued', 'waiting', 'unknown_instrument'];
const PHASED_FAULTS: Fault[] = [...ORDER_FREE_FAULTS, 'cf_currency', 'cf_no_position', 'overcount', 'bod_unvalued'];

export interface BookOptions {
  seed: number;
  portfolios?: number;
  days?: number;
  /** Inject blocking faults (in about half of the portfolios, late in their history). */
  faults?: boolean;
  /**
   * Also inject faults whose outcome depends on arrival order (a late bad cash flow or extra
   * snapshot leaves the last complete row in place): only sound when the load follows `phase`.
   */
  phased?: boolean;
}

export interface Book {
  seed: number;
  input: ModelInput;
  rows: InsertRow[];
  epochOps: EpochOp[][];
  faults: { portfolio_id: string; fault: Fault; date: string }[];
}

// ---------- the generator ----------

/** Value of one unit in USD: the centre of the random rates. */
const USD_VALUE: Record<string, number> = { USD: 1, EUR: 1.09, GBP: 1.27, JPY: 0.0067, CHF: 1.13, SEK: 0.095 };
const CURRENCIES = ['USD', 'EUR', 'GBP', 'JPY', 'CHF'];
const BASES = ['USD', 'EUR', 'GBP', 'CHF', 'JPY', 'USD', 'EUR'];

function businessDays(from: string, count: number): string[] {
  const out: string[] = [];
  for (let d = from; out.length < count; d = addDays(d, 1)) {
    const dow = new Date(`${d}T00:00:00Z`).getUTCDay();
    if (dow !== 0 && dow !== 6) out.push(d);
  }
  return out;
}

export function generateBook(options: BookOptions): Book {
  const rng = new Rng(options.seed);
  const nPortfolios = options.portfolios ?? 6;
  const nDays = options.days ?? 40;
  const withFaults = options.faults ?? true;
  const faultKinds = options.phased ? PHASED_FAULTS : ORDER_FREE_FAULTS;
  const calendar = businessDays('2025-01-02', nDays + 12);

  const input: ModelInput = { portfolios: [], instruments: [], fx_rates: [], cashflows: [], snapshots: [], manifest: [], epochs: [] };
  const rows: InsertRow[] = [];
  const epochOps: EpochOp[][] = [];
  const faults: Book['faults'] = [];
  const dec = (d: Decimal | null): string | null => (d === null ? null : d.toFixed());
  let txSeq = 0;

  // Instruments: two or three per currency plus a cash account per currency; SEK_BOND only for
  // the missing-FX fault (no SEK rate exists before the fault day).
  const instrumentsByCurrency = new Map<string, string[]>();
  const addInstrument = (i: InstrumentIn) => {
    input.instruments.push(i);
    rows.push({ table: 'instruments', phase: 'reference', values: { ...i } });
  };
  for (const c of CURRENCIES) {
    const ids: string[] = [];
    for (let k = 0; k < rng.int(2, 3); k++) ids.push(`${c}_SEC${k}`);
    instrumentsByCurrency.set(c, ids);
    for (const id of ids) addInstrument({ security_id: id, currency: c, name: rng.chance(0.5) ? `Security ${id}` : null });
    addInstrument({ security_id: `CASH_${c}`, currency: c, name: `Cash ${c}` });
  }
  addInstrument({ security_id: 'SEK_BOND', currency: 'SEK', name: 'Swedish bond' });
  const currencyOf = new Map(input.instruments.map((i) => [i.security_id, i.currency]));

  // FX for every ordered pair (main currency -> any base in use), on most business days: the
  // first calendar day always has one, later gaps make the as-of rule matter.
  const bases = Array.from({ length: nPortfolios }, (_, i) => BASES[i % BASES.length]!);
  const fx = new Map<string, Map<string, Decimal>>(); // 'EUR->USD' -> date -> rate
  const addRate = (from: string, to: string, date: string) => {
    if (fx.get(`${from}->${to}`)?.has(date)) return;
    const centre = USD_VALUE[from]! / USD_VALUE[to]!;
    // Some rates have few decimals: amount (10 dp) x rate then ends in a 5 at the 11th decimal
    // often enough to tell half-away-from-zero from other roundings.
    const dp = rng.chance(0.3) && centre > 0.5 ? rng.int(1, 4) : 10;
    const rate = new Decimal(centre).times(new Decimal(1).plus(new Decimal(rng.next() - 0.5).times(0.04)))
      .toDecimalPlaces(dp, Decimal.ROUND_HALF_UP);
    const r: FxRateIn = { from_currency: from, to_currency: to, rate_date: date, rate };
    input.fx_rates.push(r);
    rows.push({ table: 'fx_rates', phase: 'reference', values: { ...r, rate: r.rate.toFixed() } });
    const k = `${from}->${to}`;
    if (!fx.has(k)) fx.set(k, new Map());
    fx.get(k)!.set(date, rate);
  };
  for (const to of new Set(bases)) {
    for (const from of CURRENCIES) {
      if (from === to) continue;
      calendar.forEach((d, i) => { if (i === 0 || rng.chance(0.8)) addRate(from, to, d); });
    }
  }
  /** As-of rate for valuing snapshots (any rate would do: the engine sums market_value as given). */
  const rateAsOf = (from: string, to: string, date: string): Decimal => {
    if (from === to) return new Decimal(1);
    let best: Decimal = new Decimal(1);
    let bestDate = '';
    for (const [d, r] of fx.get(`${from}->${to}`) ?? []) if (d <= date && d > bestDate) { best = r; bestDate = d; }
    return best;
  };

  const portfolioIds = Array.from({ length: nPortfolios }, (_, i) => `P${String(i + 1).padStart(2, '0')}`);
  const faultPlan = new Map<string, Fault>();
  if (withFaults) {
    // About half of the portfolios get one fault each, of different kinds while kinds last.
    const kinds = rng.shuffle([...faultKinds]);
    rng.shuffle([...portfolioIds]).slice(0, Math.ceil(nPortfolios / 2))
      .forEach((p, i) => faultPlan.set(p, kinds[i % kinds.length]!));
  }

  const makeSnapshot = (p: string, s: string, date: string, epoch: number, base: string, large: boolean): SnapshotIn => {
    const c = currencyOf.get(s) ?? 'USD';
    const cash = s.startsWith('CASH_');
    const scale = c === 'JPY' ? 150 : 1;
    let quantity: Decimal, price: Decimal;
    if (cash) {
      quantity = (large ? rng.decimal(1e12, 10) : rng.money()).times(rng.chance(0.15) ? -1 : 1);
      price = new Decimal(1);
    } else {
      // Quantity 0 (cost 0), +-2 (cost_basis_local / 2 is a tie at the 11th decimal), or random.
      quantity = rng.chance(0.04) ? new Decimal(0) : rng.chance(0.1) ? new Decimal(rng.pick([2, -2]))
        : large ? rng.decimal(1e9, 10) : rng.decimal(1e5);
      price = rng.decimal(1000 * scale, 10).plus('0.01');
    }
    const mvl = round10(quantity.times(price));
    const cbl = rng.chance(0.05) ? null : quantity.abs().eq(2) ? rng.decimal(1e6, 10)
      : round10(quantity.times(price.times(rng.next() + 0.5)));
    const rate = rateAsOf(c, base, date);
    return {
      portfolio_id: p, security_id: s, date, epoch, quantity,
      cost_basis: cbl === null ? null : round10(cbl.times(rate)), cost_basis_local: cbl, market_price: price,
      market_value: round10(mvl.times(rate)), market_value_local: mvl,
      valuation_status: rng.chance(0.85) ? 'VALUED_CURRENT' : 'VALUED_STALE',
    };
  };
  // Snapshot rows are built at the end from these objects, so a fault can still spoil one.
  const snapshotPhase = new Map<SnapshotIn, Phase>();
  const pushSnapshot = (s: SnapshotIn, phase: Phase) => {
    input.snapshots.push(s);
    snapshotPhase.set(s, phase);
  };
  const pushCashflow = (f: Omit<CashflowIn, 'transaction_id'>) => {
    const cf: CashflowIn = { transaction_id: `T${String(++txSeq).padStart(6, '0')}`, ...f };
    input.cashflows.push(cf);
    rows.push({ table: 'cashflows', phase: 'reference', values: { ...cf, amount: cf.amount.toFixed() } });
  };
  const flowOf = (t: TransactionType, p: string, s: string | null, date: string, currency: string) =>
    pushCashflow({
      portfolio_id: p, security_id: s, cashflow_date: date, epoch: rng.int(0, 2),
      amount: rng.chance(0.03) ? new Decimal(0) : rng.money().times(t.sign), currency,
      classification: t.classification, timing: t.timing,
      is_position_flow: t.is_position_flow, is_portfolio_flow: t.is_portfolio_flow,
    });
  const securityTypes = TRANSACTION_TYPES.filter((t) => t.level === 'security');
  const portfolioTypes = TRANSACTION_TYPES.filter((t) => t.level === 'portfolio');

  const portfolioDays = (offset: number, n: number) => calendar.slice(offset, offset + n);

  for (const [pi, p] of portfolioIds.entries()) {
    const base = bases[pi]!;
    const days = portfolioDays(rng.int(0, 5), nDays + rng.int(-3, 3));
    const n = days.length;
    const pf: PortfolioIn = { portfolio_id: p, base_currency: base, open_date: days[0]!, close_date: rng.chance(0.2) ? days[n - 1]! : null };
    input.portfolios.push(pf);
    rows.push({ table: 'portfolios', phase: 'reference', values: { ...pf } });
    const fault = faultPlan.get(p);
    // Faults go late in the history: one bad day holds every later day of the portfolio.
    const faultDay = fault === 'overcount' ? n - 1 : rng.int(Math.floor(n * 0.75), n - 2);

    // Holdings: the base-currency cash account always, other securities over one interval each.
    const others = rng.shuffle(CURRENCIES.flatMap((c) => [...instrumentsByCurrency.get(c)!, ...(c !== base && rng.chance(0.3) ? [`CASH_${c}`] : [])]))
      .slice(0, rng.int(3, 6));
    const holding = new Map<string, [number, number]>([[`CASH_${base}`, [0, n - 1]]]);
    for (const s of others) {
      const a = rng.chance(0.6) ? 0 : rng.int(1, Math.floor(n / 2));
      holding.set(s, [a, rng.chance(0.6) ? n - 1 : rng.int(a, n - 1)]);
    }
    if (fault === 'fx') holding.set('SEK_BOND', [faultDay, n - 1]);
    const large = new Set([...holding.keys()].filter(() => rng.chance(0.15)));
    const emptyDays = new Set(days.map((_, i) => i).filter((i) => i !== faultDay && i !== faultDay - 1 && rng.chance(0.02)));
    // Declared days: a few dates keep their snapshots but get no manifest (undeclared): the
    // next declared day then takes its portfolio BOD from further back, its position BOD from them.
    const undeclared = new Set(days.map((_, i) => i).filter((i) => i > 0 && i < n - 1 && Math.abs(i - faultDay) > 1 && rng.chance(0.04)));
    if (fault === 'bod_unvalued') undeclared.add(faultDay - 1);

    // Epoch history of half of the keys: inserted at some epoch (from -infinity), raised by
    // UPDATE once or twice with a watermark anywhere around the period; sometimes a status-only update.
    const histories = new Map<string, EpochHistoryIn>();
    for (const s of holding.keys()) {
      if (!rng.chance(0.5)) continue;
      let epoch = rng.pick([0, 0, 1, 2]);
      const h: EpochHistoryIn = { portfolio_id: p, security_id: s, current: epoch, starts: [{ epoch, start: null }] };
      const ops: EpochOp[] = [{
        kind: 'insert', portfolio_id: p, security_id: s, epoch,
        watermark_date: rng.chance(0.3) ? rng.pick(days) : null, status: 'CURRENT',
      }];
      for (let k = rng.int(0, 2); k > 0; k--) {
        epoch += rng.int(1, 2);
        const watermark = addDays(days[0]!, rng.int(-3, Math.round(n * 1.45)));
        ops.push({ kind: 'update', portfolio_id: p, security_id: s, epoch, watermark_date: watermark, status: 'REPROCESSING' });
        h.starts.push({ epoch, start: addDays(watermark, 1) });
        h.current = epoch;
      }
      if (rng.chance(0.2)) {
        ops.push({ kind: 'update', portfolio_id: p, security_id: s, epoch, watermark_date: rng.pick(days), status: 'CURRENT' });
      }
      histories.set(s, h);
      input.epochs.push(h);
      epochOps.push(ops);
    }

    for (const [i, date] of days.entries()) {
      const declared = !undeclared.has(i);
      const phase: Phase = declared ? 'snapshot' : 'reference';
      const held: SnapshotIn[] = [];
      for (const [s, [a, b]] of holding) {
        const h = histories.get(s);
        const effective = effectiveEpoch(h, date);
        const isHeld = i >= a && i <= b && !emptyDays.has(i);
        if (isHeld) {
          const snap = makeSnapshot(p, s, date, effective, base, large.has(s));
          pushSnapshot(snap, phase);
          held.push(snap);
        }
        // Snapshots at other epochs (stale or not yet started) must be ignored, even unvalued ones,
        // and even where the key holds nothing at its effective epoch.
        if (h && h.current > 0 && rng.chance(isHeld ? 0.2 : 0.05)) {
          const other = [...new Set([0, ...h.starts.map((x) => x.epoch)])].filter((e) => e !== effective);
          if (other.length) {
            const ghost = makeSnapshot(p, s, date, rng.pick(other), base, false);
            if (rng.chance(0.3)) { ghost.valuation_status = 'UNVALUED'; ghost.market_value = null; }
            pushSnapshot(ghost, phase);
          }
        }
      }
      let expected = held.length;

      if (fault && i === faultDay) {
        faults.push({ portfolio_id: p, fault, date });
        switch (fault) {
          case 'unvalued': {
            const victim = rng.pick(held);
            const how = rng.int(0, 3);
            if (how === 0) victim.valuation_status = 'UNVALUED';
            else if (how === 1) victim.valuation_status = 'FAILED';
            else if (how === 2) victim.market_value = null;
            else victim.market_value_local = null;
            break;
          }
          case 'waiting': expected += 1; break;
          case 'unknown_instrument':
            pushSnapshot(makeSnapshot(p, `GHOST_${p}`, date, 0, base, false), phase);
            expected += 1;
            break;
          case 'overcount': expected = Math.max(0, expected - 1); break;
          case 'cf_currency': {
            const s = rng.pick(held).security_id;
            const c = currencyOf.get(s)!;
            flowOf(rng.pick(securityTypes), p, s, date, CURRENCIES.find((x) => x !== c)!);
            break;
          }
          case 'cf_no_position': {
            const notHeld = input.instruments.map((x) => x.security_id).filter((s) => !held.some((h) => h.security_id === s));
            const s = rng.pick(notHeld);
            flowOf(rng.pick(securityTypes), p, s, date, currencyOf.get(s)!);
            break;
          }
          case 'bod_unvalued': {
            // The previous (undeclared) day's snapshot of a key held today is unvalued.
            const prevDate = days[i - 1]!;
            const victim = input.snapshots.find((x) => x.portfolio_id === p && x.date === prevDate
              && held.some((h) => h.security_id === x.security_id)
              && x.epoch === effectiveEpoch(histories.get(x.security_id), prevDate));
            if (victim) victim.valuation_status = 'UNVALUED';
            break;
          }
          case 'fx':
            // SEK -> base appears two business days after SEK_BOND is first held.
            for (const d of days.slice(i + 2)) if (rng.chance(0.8)) addRate('SEK', base, d);
            break;
        }
      }

      // Cash flows: on a random share of held positions (in the instrument's currency), and
      // portfolio-level ones in any currency that has rates to the base.
      // Several flows on one day make per-product rounding (instead of rounding the sum) visible.
      for (const s of held) {
        for (let k = rng.chance(0.3) ? rng.int(1, 3) : 0; k > 0; k--) {
          flowOf(rng.pick(securityTypes), p, s.security_id, date, currencyOf.get(s.security_id)!);
        }
      }
      for (let k = rng.chance(0.35) ? rng.int(1, 3) : 0; k > 0; k--) {
        const t = rng.pick(portfolioTypes);
        // ACCRUAL (no flag) may even be in SEK: it counts nowhere, so it needs no rate.
        flowOf(t, p, null, date, t.is_portfolio_flow ? rng.pick(CURRENCIES) : rng.pick([...CURRENCIES, 'SEK']));
      }

      if (declared) {
        const m: ManifestIn = { portfolio_id: p, aggregation_date: date, expected_count: expected };
        input.manifest.push(m);
        // The over-count manifest comes after the snapshots (else the day would be computed on
        // the way up and that last complete row would stay).
        const phase: Phase = fault === 'overcount' && i === faultDay ? 'late' : expected === 0 ? 'empty_day' : 'reference';
        rows.push({ table: 'daily_aggregation_manifest', phase, values: { ...m } });
      }
    }
  }

  if (withFaults) {
    // A portfolio nobody registered: all of its days stay blocked.
    const p = 'PX_UNKNOWN';
    faults.push({ portfolio_id: p, fault: 'unknown_portfolio', date: calendar[0]! });
    for (const date of calendar.slice(0, 4)) {
      const snap = makeSnapshot(p, 'CASH_USD', date, 0, 'USD', false);
      pushSnapshot(snap, 'snapshot');
      const m: ManifestIn = { portfolio_id: p, aggregation_date: date, expected_count: 1 };
      input.manifest.push(m);
      rows.push({ table: 'daily_aggregation_manifest', phase: 'reference', values: { ...m } });
    }
  }
  for (const [snap, phase] of snapshotPhase) {
    rows.push({
      table: 'daily_position_snapshots', phase,
      values: {
        portfolio_id: snap.portfolio_id, security_id: snap.security_id, date: snap.date, epoch: snap.epoch,
        quantity: snap.quantity.toFixed(), cost_basis: dec(snap.cost_basis), cost_basis_local: dec(snap.cost_basis_local),
        market_price: dec(snap.market_price), market_value: dec(snap.market_value),
        market_value_local: dec(snap.market_value_local), valuation_status: snap.valuation_status,
      },
    });
  }
  return { seed: options.seed, input, rows, epochOps, faults };
}
