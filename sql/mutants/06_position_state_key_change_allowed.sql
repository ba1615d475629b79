-- defect: the refusal of a position_state key change is gone: an UPDATE of portfolio_id or
--   security_id is accepted (and the epoch history stays with the old key).
-- replaces: trigger position_state_key on public.position_state (function
--   portfolio_timeseries_engine.tg_position_state_key())
-- caught-by: test/bad-input.test.ts
drop trigger if exists position_state_key on public.position_state;
