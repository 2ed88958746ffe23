// The request rules a person's input can break, checked before a payment
// is queued. The gateway refuses such a request with invalid_argument and
// a buf.validate violation but no Remit ErrorInfo, which is not a final
// answer (see finalAnswer in app.ts): queued, it would be resent for ever
// and hold up every payment behind it. The rules are those of
// proto/remit/names/v1/names.proto (bank_name, id, text) and of
// MakePaymentRequest in proto/remit/gateway/v1/payment.proto;
// TestWalletRefusesBadInput checks that the page and the gateway agree.

const bankName = /^[a-z0-9][a-z0-9-]{0,62}$/;
const accountID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
// remit.text: C0, DEL and C1 controls, the line and paragraph separators
// and Unicode's Bidi_Control characters.
const notText = /[\p{Cc}\u061C\u200E\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069]/u;
const maxDescription = 200; // characters (code points), as protovalidate counts
const maxAmount = 1_000_000_000_000n;

// paymentProblem says what is wrong with a payment as typed, or "".
export function paymentProblem(bank: string, account: string, amount: bigint, description: string): string {
  if (!bankName.test(bank)) {
    return "The payee bank must be a bank name: lowercase letters, digits and dashes, for example bank-b.";
  }
  if (!accountID.test(account)) {
    return "The payee account must be an account id: letters, digits, '_', '.' and '-', for example bob.";
  }
  if (amount > maxAmount) {
    return "The amount is too large.";
  }
  if ([...description].length > maxDescription) {
    return `The description may have at most ${maxDescription} characters.`;
  }
  if (notText.test(description)) {
    return "The description may not hold tabs, line breaks, control characters or text-direction marks.";
  }
  return "";
}
