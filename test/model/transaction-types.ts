// The platform's transaction types as data: how each one lands in `cashflows`. The random book
// draws from this table, so every classification, timing and flag combination is exercised.
//
// `sign` is the sign of `amount` from the cash perspective (money leaving the position or the
// portfolio is negative). `level` says whether the flow names a security or is portfolio-level
// (security_id NULL, in its own currency).

export type Classification =
  | 'INVESTMENT_OUTFLOW' | 'INVESTMENT_INFLOW' | 'INCOME' | 'EXPENSE'
  | 'CASHFLOW_IN' | 'CASHFLOW_OUT' | 'TRANSFER_IN' | 'TRANSFER_OUT';

export interface TransactionType {
  type: string;
  classification: Classification;
  timing: 'BOD' | 'EOD';
  is_position_flow: boolean;
  is_portfolio_flow: boolean;
  sign: 1 | -1;
  level: 'security' | 'portfolio';
}

export const TRANSACTION_TYPES: readonly TransactionType[] = [
  // Buying moves cash into the security: a flow of the position, not of the portfolio.
  { type: 'BUY', classification: 'INVESTMENT_OUTFLOW', timing: 'BOD', is_position_flow: true, is_portfolio_flow: false, sign: -1, level: 'security' },
  { type: 'SELL', classification: 'INVESTMENT_INFLOW', timing: 'EOD', is_position_flow: true, is_portfolio_flow: false, sign: 1, level: 'security' },
  { type: 'DIVIDEND', classification: 'INCOME', timing: 'EOD', is_position_flow: true, is_portfolio_flow: false, sign: 1, level: 'security' },
  { type: 'INTEREST', classification: 'INCOME', timing: 'EOD', is_position_flow: true, is_portfolio_flow: false, sign: 1, level: 'security' },
  // A fee leaves the portfolio: both flags, and it is a fee.
  { type: 'FEE', classification: 'EXPENSE', timing: 'EOD', is_position_flow: true, is_portfolio_flow: true, sign: -1, level: 'security' },
  // A withheld tax is an EXPENSE of the position only: NOT a portfolio flow, hence NOT a fee.
  { type: 'TAX', classification: 'EXPENSE', timing: 'EOD', is_position_flow: true, is_portfolio_flow: false, sign: -1, level: 'security' },
  // External money: portfolio flows. A deposit is portfolio-level (no security, own currency);
  // a withdrawal is paid out of a cash position (both flags), and is never a fee.
  { type: 'DEPOSIT', classification: 'CASHFLOW_IN', timing: 'BOD', is_position_flow: false, is_portfolio_flow: true, sign: 1, level: 'portfolio' },
  { type: 'WITHDRAWAL', classification: 'CASHFLOW_OUT', timing: 'EOD', is_position_flow: true, is_portfolio_flow: true, sign: -1, level: 'security' },
  { type: 'TRANSFER_IN', classification: 'TRANSFER_IN', timing: 'BOD', is_position_flow: true, is_portfolio_flow: true, sign: 1, level: 'security' },
  { type: 'TRANSFER_OUT', classification: 'TRANSFER_OUT', timing: 'EOD', is_position_flow: true, is_portfolio_flow: true, sign: -1, level: 'security' },
  // Portfolio-level fee (custody, management): NULL security, EXPENSE portfolio flow, so a fee.
  { type: 'MANAGEMENT_FEE', classification: 'EXPENSE', timing: 'EOD', is_position_flow: false, is_portfolio_flow: true, sign: -1, level: 'portfolio' },
  // Portfolio-level bookkeeping entry that is neither kind of flow: it must count nowhere (and
  // needs no FX rate, since only NULL-security portfolio flows are converted).
  { type: 'ACCRUAL', classification: 'INCOME', timing: 'EOD', is_position_flow: false, is_portfolio_flow: false, sign: 1, level: 'portfolio' },
];

export const transactionType = (type: string): TransactionType => {
  const t = TRANSACTION_TYPES.find((x) => x.type === type);
  if (!t) throw new Error(`unknown transaction type ${type}`);
  return t;
};
