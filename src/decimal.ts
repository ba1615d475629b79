// Money is Decimal, never number. decimal.js keeps every digit of a value parsed from a string,
// but arithmetic rounds to `precision` significant digits (default 20): too few for 20 integer
// digits plus 10 decimals. Importing this library raises it for the shared Decimal constructor.
import { Decimal } from 'decimal.js';

Decimal.set({ precision: 60, rounding: Decimal.ROUND_HALF_UP });

export { Decimal };
