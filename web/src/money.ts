// Amounts: int64 minor units on the wire (bigint here), shown and parsed
// in the browser's locale. Never a float: the decimal string goes to
// Intl.NumberFormat as it is, so 0.1 + 0.2 never happens.

function format(currency: string): Intl.NumberFormat {
  return new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() });
}

// fractionDigits is the currency's minor-unit exponent as the browser knows
// it (2 for usd, 0 for jpy).
export function fractionDigits(currency: string): number {
  return format(currency).resolvedOptions().maximumFractionDigits ?? 2;
}

// formatMoney formats minor units of currency, e.g. 1250n usd -> "$12.50".
export function formatMoney(minor: bigint, currency: string): string {
  if (!currency) return minor.toString();
  const digits = fractionDigits(currency);
  const neg = minor < 0n;
  const abs = neg ? -minor : minor;
  const base = 10n ** BigInt(digits);
  let s = (abs / base).toString();
  if (digits > 0) s += "." + (abs % base).toString().padStart(digits, "0");
  // A decimal string keeps the exact value (Intl.NumberFormat v3).
  return format(currency).format((neg ? "-" + s : s) as unknown as number);
}

// parseAmount turns a decimal typed by a person ("12.5", "12,50", "3")
// into minor units, or throws an Error saying what is wrong.
export function parseAmount(text: string, currency: string): bigint {
  const digits = fractionDigits(currency);
  const m = /^\s*(\d{1,13})(?:[.,](\d*))?\s*$/.exec(text);
  if (!m) throw new Error("Type the amount as a number, for example 12.50.");
  const frac = m[2] ?? "";
  if (frac.length > digits) {
    throw new Error(`At most ${digits} digits after the decimal point for ${currency}.`);
  }
  const minor = BigInt(m[1]) * 10n ** BigInt(digits) + BigInt((frac + "0".repeat(digits)).slice(0, digits) || "0");
  if (minor <= 0n) throw new Error("The amount must be more than zero.");
  return minor;
}

// plainAmount formats minor units as the plain decimal parseAmount reads
// back, e.g. 1250n usd -> "12.50", for prefilling an input.
export function plainAmount(minor: bigint, currency: string): string {
  const digits = fractionDigits(currency);
  const base = 10n ** BigInt(digits);
  return digits > 0 ? `${minor / base}.${(minor % base).toString().padStart(digits, "0")}` : (minor / base).toString();
}
