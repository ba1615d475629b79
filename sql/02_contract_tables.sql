-- The contract tables (docs/contract.md section 2). Producers write plain INSERT/UPDATE/DELETE
-- naming only these columns; anything the engine needs beyond them lives in
-- portfolio_timeseries_engine. Table DDL: applied once by the initial migration, changed only by
-- ALTERs in later migrations (docs/development.md).
--
-- No foreign keys between inputs on purpose: upstream services write in any order, and a
-- reference that is missing for now (unknown instrument, unknown portfolio) blocks the day with a
-- reason instead of refusing the row.
--
-- numeric(30, 10): 20 integer digits and 10 decimals. The type itself refuses infinities
-- ("numeric field overflow"; COPY names the line and column); NaN is a valid numeric value, so
-- every money, quantity and rate column refuses it explicitly, as every date column refuses
-- 'infinity' and every identifier the empty string: values like these would otherwise be stored
-- and either poison a sum or leave a day that can never be computed.

create table public.portfolios (
  portfolio_id text primary key,
  base_currency text not null,
  open_date date not null,
  close_date date,
  constraint portfolios_base_currency_check check (case when base_currency ~ '^[A-Z]{3}$' then true else portfolio_timeseries_engine.refuse(
    format('portfolio %s', portfolio_id), format('base_currency must be 3 upper-case letters, got %s', quote_nullable(base_currency))) end),
  constraint portfolios_values_check check (case
    when portfolio_id <> '' and isfinite(open_date) and (close_date is null or isfinite(close_date)) then true
    else portfolio_timeseries_engine.refuse(format('portfolio %s', quote_literal(portfolio_id)),
      case when portfolio_id = '' then 'portfolio_id must not be empty'
           else format('open_date and close_date must be finite dates, got %s and %s', open_date, coalesce(close_date::text, 'NULL')) end) end)
);

create table public.instruments (
  security_id text primary key,
  currency text not null,
  name text,
  constraint instruments_currency_check check (case when currency ~ '^[A-Z]{3}$' then true else portfolio_timeseries_engine.refuse(
    format('instrument %s', security_id), format('currency must be 3 upper-case letters, got %s', quote_nullable(currency))) end),
  constraint instruments_security_id_check check (case when security_id <> '' then true else portfolio_timeseries_engine.refuse(
    format('instrument %s', quote_literal(security_id)), 'security_id must not be empty') end)
);

create table public.fx_rates (
  from_currency text not null,
  to_currency text not null,
  rate_date date not null,
  rate numeric(30, 10) not null,
  primary key (from_currency, to_currency, rate_date),
  constraint fx_rates_from_currency_check check (case when from_currency ~ '^[A-Z]{3}$' then true else portfolio_timeseries_engine.refuse(
    format('fx rate %s->%s on %s', from_currency, to_currency, rate_date), format('from_currency must be 3 upper-case letters, got %s', quote_nullable(from_currency))) end),
  constraint fx_rates_to_currency_check check (case when to_currency ~ '^[A-Z]{3}$' then true else portfolio_timeseries_engine.refuse(
    format('fx rate %s->%s on %s', from_currency, to_currency, rate_date), format('to_currency must be 3 upper-case letters, got %s', quote_nullable(to_currency))) end),
  -- NaN compares greater than every number in PostgreSQL, so "rate > 0" alone lets it through.
  constraint fx_rates_rate_check check (case when rate > 0 and rate <> 'NaN' then true else portfolio_timeseries_engine.refuse(
    format('fx rate %s->%s on %s', from_currency, to_currency, rate_date),
    format('rate must be a number > 0, got %s', rate)) end),
  constraint fx_rates_rate_date_check check (case when isfinite(rate_date) then true else portfolio_timeseries_engine.refuse(
    format('fx rate %s->%s on %s', from_currency, to_currency, rate_date), format('rate_date must be a finite date, got %s', rate_date)) end)
);

create table public.cashflows (
  transaction_id text primary key,
  portfolio_id text not null,
  security_id text,
  cashflow_date date not null,
  epoch integer not null default 0,
  amount numeric(30, 10) not null,
  currency text not null,
  classification text not null,
  timing text not null,
  is_position_flow boolean not null,
  is_portfolio_flow boolean not null,
  constraint cashflows_currency_check check (case when currency ~ '^[A-Z]{3}$' then true else portfolio_timeseries_engine.refuse(
    format('cash flow %s (portfolio %s, security %s, %s)',
      transaction_id, portfolio_id, coalesce(security_id, 'NULL'), cashflow_date), format('currency must be 3 upper-case letters, got %s', quote_nullable(currency))) end),
  constraint cashflows_timing_check check (case when timing in ('BOD', 'EOD') then true else portfolio_timeseries_engine.refuse(
    format('cash flow %s (portfolio %s, security %s, %s)',
      transaction_id, portfolio_id, coalesce(security_id, 'NULL'), cashflow_date),
    format('timing must be BOD or EOD, got %s', coalesce(quote_literal(timing), 'NULL'))) end),
  constraint cashflows_values_check check (case
    when amount <> 'NaN' and isfinite(cashflow_date) and transaction_id <> '' and portfolio_id <> ''
         and (security_id is null or security_id <> '') then true
    else portfolio_timeseries_engine.refuse(
      format('cash flow %s (portfolio %s, security %s, %s)',
        quote_literal(transaction_id), quote_literal(portfolio_id), coalesce(quote_literal(security_id), 'NULL'), cashflow_date),
      case when amount = 'NaN' then 'amount must be a number, got NaN'
           when not isfinite(cashflow_date) then format('cashflow_date must be a finite date, got %s', cashflow_date)
           else 'transaction_id, portfolio_id and security_id must not be empty' end) end)
);
create index cashflows_portfolio_date_idx on public.cashflows (portfolio_id, cashflow_date, security_id);

create table public.position_state (
  portfolio_id text not null,
  security_id text not null,
  epoch integer not null default 0,
  watermark_date date,
  status text,
  primary key (portfolio_id, security_id),
  constraint position_state_epoch_check check (case when epoch >= 0 then true else portfolio_timeseries_engine.refuse(
    format('position state (portfolio %s, security %s)', portfolio_id, security_id),
    format('epoch must be >= 0, got %s', epoch)) end),
  -- An epoch raised with watermark W starts on W + 1, which must be a date.
  constraint position_state_watermark_check check (case
    when (watermark_date is null or (isfinite(watermark_date) and watermark_date < '5874897-12-31'))
         and portfolio_id <> '' and security_id <> '' then true
    else portfolio_timeseries_engine.refuse(
      format('position state (portfolio %s, security %s)', quote_literal(portfolio_id), quote_literal(security_id)),
      case when portfolio_id = '' or security_id = '' then 'portfolio_id and security_id must not be empty'
           else format('watermark_date must be a finite date before 5874897-12-31, got %s', watermark_date) end) end)
);

create table public.daily_position_snapshots (
  id bigint generated by default as identity primary key,
  portfolio_id text not null,
  security_id text not null,
  date date not null,
  epoch integer not null default 0,
  quantity numeric(30, 10) not null,
  cost_basis numeric(30, 10),
  cost_basis_local numeric(30, 10),
  market_price numeric(30, 10),
  market_value numeric(30, 10),
  market_value_local numeric(30, 10),
  valuation_status text not null default 'UNVALUED',
  constraint daily_position_snapshots_key unique (portfolio_id, security_id, date, epoch),
  constraint daily_position_snapshots_valuation_status_check check (case when valuation_status in ('UNVALUED', 'VALUED_CURRENT', 'VALUED_STALE', 'FAILED') then true else portfolio_timeseries_engine.refuse(
    format('snapshot (portfolio %s, security %s, %s, epoch %s)', portfolio_id, security_id, date, epoch),
    format('valuation_status must be UNVALUED, VALUED_CURRENT, VALUED_STALE or FAILED, got %s',
      coalesce(quote_literal(valuation_status), 'NULL'))) end),
  constraint daily_position_snapshots_values_check check (case
    when quantity <> 'NaN' and (cost_basis is null or cost_basis <> 'NaN')
         and (cost_basis_local is null or cost_basis_local <> 'NaN') and (market_price is null or market_price <> 'NaN')
         and (market_value is null or market_value <> 'NaN') and (market_value_local is null or market_value_local <> 'NaN')
         and epoch >= 0 and isfinite(date) and portfolio_id <> '' and security_id <> '' then true
    else portfolio_timeseries_engine.refuse(
      format('snapshot (portfolio %s, security %s, %s, epoch %s)', quote_literal(portfolio_id), quote_literal(security_id), date, epoch),
      case when epoch < 0 then format('epoch must be >= 0, got %s', epoch)
           when not isfinite(date) then format('date must be a finite date, got %s', date)
           when portfolio_id = '' or security_id = '' then 'portfolio_id and security_id must not be empty'
           else concat_ws(', ',
             case when quantity = 'NaN' then 'quantity' end, case when cost_basis = 'NaN' then 'cost_basis' end,
             case when cost_basis_local = 'NaN' then 'cost_basis_local' end, case when market_price = 'NaN' then 'market_price' end,
             case when market_value = 'NaN' then 'market_value' end, case when market_value_local = 'NaN' then 'market_value_local' end)
             || ' must be a number, got NaN' end) end)
);
-- (portfolio_id, date, security_id): a day's positions. The unique key serves "the key's previous
-- / next snapshot" (a backward or forward index scan). Both indexes hold portfolio, security and
-- date, so a probe for one position day is exact whichever of the two the planner picks (without
-- statistics it cannot tell them apart). No index leads with security_id: an instrument change
-- finds its portfolios in the engine's registry (portfolio_timeseries_engine.portfolio_security),
-- and an index the planner could mistake for a probe of one portfolio's key would read every
-- portfolio's rows of that security.
create index daily_position_snapshots_day_idx on public.daily_position_snapshots (portfolio_id, date, security_id);

create table public.daily_aggregation_manifest (
  portfolio_id text not null,
  aggregation_date date not null,
  expected_count integer not null,
  primary key (portfolio_id, aggregation_date),
  constraint daily_aggregation_manifest_expected_count_check check (case when expected_count >= 0 then true else portfolio_timeseries_engine.refuse(
    format('manifest (portfolio %s, %s)', portfolio_id, aggregation_date),
    format('expected_count must be >= 0, got %s', expected_count)) end),
  constraint daily_aggregation_manifest_values_check check (case
    when isfinite(aggregation_date) and portfolio_id <> '' then true
    else portfolio_timeseries_engine.refuse(format('manifest (portfolio %s, %s)', quote_literal(portfolio_id), aggregation_date),
      case when portfolio_id = '' then 'portfolio_id must not be empty'
           else format('aggregation_date must be a finite date, got %s', aggregation_date) end) end)
);

-- Outputs: written only by the engine.
create table public.position_timeseries (
  portfolio_id text not null,
  security_id text not null,
  date date not null,
  epoch integer not null,
  bod_market_value numeric(30, 10) not null,
  bod_cashflow_position numeric(30, 10) not null,
  eod_cashflow_position numeric(30, 10) not null,
  bod_cashflow_portfolio numeric(30, 10) not null,
  eod_cashflow_portfolio numeric(30, 10) not null,
  eod_market_value numeric(30, 10) not null,
  fees numeric(30, 10) not null,
  quantity numeric(30, 10) not null,
  cost numeric(30, 10) not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (portfolio_id, security_id, date)
);
create index position_timeseries_day_idx on public.position_timeseries (portfolio_id, date, security_id);

create table public.portfolio_timeseries (
  portfolio_id text not null,
  date date not null,
  epoch integer not null,
  bod_market_value numeric(30, 10) not null,
  bod_cashflow numeric(30, 10) not null,
  eod_cashflow numeric(30, 10) not null,
  eod_market_value numeric(30, 10) not null,
  fees numeric(30, 10) not null,
  position_count integer not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (portfolio_id, date)
);
