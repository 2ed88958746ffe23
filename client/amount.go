package client

import (
	"strconv"
	"strings"
)

// minorDigits lists the ISO 4217 currencies whose minor unit is not the
// usual hundredth; every other currency has two decimals.
var minorDigits = map[string]int{
	"bif": 0, "clp": 0, "djf": 0, "gnf": 0, "isk": 0, "jpy": 0, "kmf": 0, "krw": 0,
	"pyg": 0, "rwf": 0, "ugx": 0, "vnd": 0, "vuv": 0, "xaf": 0, "xof": 0, "xpf": 0,
	"bhd": 3, "iqd": 3, "jod": 3, "kwd": 3, "lyd": 3, "omr": 3, "tnd": 3,
}

// Decimals returns the number of decimals of currency's minor unit (2 for
// usd, 0 for jpy, 3 for kwd).
func Decimals(currency string) int {
	if d, ok := minorDigits[strings.ToLower(currency)]; ok {
		return d
	}
	return 2
}

// ParseAmount converts a decimal amount as a person types it ("12.50",
// "12", "0.5") into minor units of currency, exactly: no floating point is
// involved, and more decimals than the currency has is an error rather than
// a silent rounding.
func ParseAmount(s, currency string) (int64, error) {
	if err := validateCurrency(currency); err != nil {
		return 0, err
	}
	digits := Decimals(currency)
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || !allDigits(whole) || !allDigits(frac) {
		return 0, invalid("amount %q is not a decimal number like 12.50", s)
	}
	if len(frac) > digits {
		return 0, invalid("amount %q has more than %d decimals for %s", s, digits, currency)
	}
	frac += strings.Repeat("0", digits-len(frac))
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil || n > MaxAmount {
		return 0, invalid("amount %q is too large", s)
	}
	if n == 0 {
		return 0, invalid("amount must be positive")
	}
	return n, nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// FormatAmount renders minor units as a decimal with the currency's
// decimals and its code, e.g. FormatAmount(1250, "usd") == "12.50 usd".
func FormatAmount(amount int64, currency string) string {
	digits := Decimals(currency)
	sign := ""
	var u uint64
	if amount < 0 {
		// -amount overflows for math.MinInt64; -(amount+1) never does.
		sign, u = "-", uint64(-(amount+1))+1 //nolint:gosec // G115: -(amount+1) >= 0 for every negative int64
	} else {
		u = uint64(amount)
	}
	s := strconv.FormatUint(u, 10)
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	return sign + s + " " + currency
}
