// The Remit browser wallet: plain TypeScript and the DOM, talking gRPC-Web
// to the gateway that serves this page. Everything from the API is put on
// the page with textContent, never as HTML.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AuthService } from "./gen/remit/gateway/v1/auth_pb";
import { PaymentEventType, PaymentService, type WatchPaymentsResponse } from "./gen/remit/gateway/v1/payment_pb";
import { AdminService, BankStatus, Direction } from "./gen/remit/gateway/v1/admin_pb";
import { FailureReason, PaymentStatus, RefundReason, Role, type AccountRef, type Payment } from "./gen/remit/gateway/v1/types_pb";
import { formatMoney, parseAmount, plainAmount } from "./money";
import * as outbox from "./outbox";
import { paymentProblem } from "./rules";

// Session is what survives a reload of this tab (sessionStorage, never a
// cookie): the access token and who it belongs to.
type Session = {
  token: string;
  clientId: string;
  bank: string;
  accountId: string;
  roles: Role[];
  currency: string;
};

const sessionKey = "remit.session";
let session: Session | undefined;
let watchAbort: AbortController | undefined;

// auth adds the current session's token, unless the call carries its own:
// the outbox sends each payment with the token of the session that queued
// it, so that one sent after a logout or another login is never sent as
// someone else.
const auth: Interceptor = (next) => async (req) => {
  if (session && !req.header.has("Authorization")) req.header.set("Authorization", "Bearer " + session.token);
  return next(req);
};
// The gateway that served this page, then its other replicas (on one
// database, they answer any request alike; /replicas.json lists them).
// Calls go to one at a time; when it does not answer, to the next.
let replicas: string[] = [location.origin];
let current = 0;
const replicasLoaded: Promise<void> = fetch("/replicas.json")
  .then((r) => (r.ok ? r.json() : { replicas: [] }))
  .then((j: { replicas?: unknown }) => {
    if (Array.isArray(j.replicas)) replicas = [location.origin, ...j.replicas.filter((u) => typeof u === "string")];
  })
  .catch(() => undefined);

// unansweredAfter gives up on a unary call at one replica that accepted
// the connection and never answered (paused, stalled), so that the call
// goes to the next one, when there is one. Streams are not bounded: they
// wait for events.
const unansweredAfter = 5000;

// failoverFetch sends a request to the replica in use and, when the
// network fails or it does not answer in time, to the next, the same
// request (a payment keeps its transaction id), each replica once.
const failoverFetch: typeof fetch = async (input, init) => {
  await replicasLoaded;
  const url = new URL(input instanceof Request ? input.url : input.toString());
  const stream = url.pathname.endsWith("/WatchPayments");
  let last: unknown;
  for (let tried = 0; tried < replicas.length; tried++) {
    const at = current;
    const base = new URL(replicas[at]);
    url.protocol = base.protocol;
    url.host = base.host;
    // This attempt's signal: the caller's, and for a unary call the
    // deadline too.
    const attempt = new AbortController();
    const callerSignal = init?.signal ?? undefined;
    const follow = () => attempt.abort(callerSignal?.reason);
    callerSignal?.addEventListener("abort", follow);
    if (callerSignal?.aborted) follow();
    // Only with another replica to go to: alone, the gateway is waited
    // for as long as the call takes.
    const timer =
      stream || replicas.length < 2 ? undefined : setTimeout(() => attempt.abort(new Error("no answer")), unansweredAfter);
    try {
      return await fetch(url, { ...init, signal: attempt.signal });
    } catch (e) {
      if (callerSignal?.aborted) throw e; // the caller gave up, not the replica
      last = e;
      if (current === at) current = (at + 1) % replicas.length;
    } finally {
      // A response arrived: its body may still be streaming, so only the
      // deadline of an answered call ends here, never the caller's link.
      if (timer !== undefined) clearTimeout(timer);
    }
  }
  throw last;
};

const transport = createGrpcWebTransport({ baseUrl: location.origin, interceptors: [auth], fetch: failoverFetch });
const authClient = createClient(AuthService, transport);
const payments = createClient(PaymentService, transport);
const admin = createClient(AdminService, transport);

// ---- DOM helpers ----

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error("missing #" + id);
  return e as T;
}

// h builds an element; string children become text nodes.
function h(tag: string, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(typeof c === "string" ? document.createTextNode(c) : c);
  return e;
}

function say(id: string, text: string, kind: "ok" | "bad" | "queued" | "" = ""): void {
  const e = $(id);
  e.textContent = text;
  e.className = kind;
}

function show(ids: string[], on: boolean): void {
  for (const id of ids) $(id).hidden = !on;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
function when(t: Timestamp | undefined): string {
  return t ? dateFormat.format(timestampDate(t)) : "";
}

function ref(a: { bank: string; accountId: string } | undefined): string {
  return a ? `${a.bank}/${a.accountId}` : "?";
}

function isMine(a: AccountRef | undefined): boolean {
  return !!session && !!a && a.bank === session.bank && a.accountId === session.accountId;
}

// ---- errors ----

// reasonOf is the ErrorInfo reason of a Remit error ("" if none), decoded
// by hand: google.rpc.ErrorInfo is reason = 1, domain = 2.
function errorInfo(err: ConnectError): { reason: string; domain: string } {
  for (const d of err.details) {
    if (!("type" in d) || d.type !== "google.rpc.ErrorInfo") continue;
    const r = new BinaryReader(d.value);
    let reason = "";
    let domain = "";
    while (r.pos < r.len) {
      const [field, wire] = r.tag();
      if (field === 1) reason = r.string();
      else if (field === 2) domain = r.string();
      else r.skip(wire);
    }
    return { reason, domain };
  }
  return { reason: "", domain: "" };
}

// retryable mirrors client.Retryable (client/errors.go): may the same
// request be sent again with the same transaction id?
function retryable(err: ConnectError): boolean {
  const info = errorInfo(err);
  switch (err.code) {
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.ResourceExhausted:
    case Code.Canceled:
      return true;
    case Code.Aborted:
      return info.reason === "REQUEST_IN_PROGRESS";
    case Code.Unknown:
    case Code.Internal:
      // Without Remit's ErrorInfo the answer was lost on the way.
      return info.domain !== "remit.dev";
    default:
      return false;
  }
}

// finalAnswer mirrors client/outbox finalAnswer (client/outbox/send.go):
// only an error built by the gateway (ErrorInfo of domain remit.dev) with
// one of these codes ends a queued payment. Anything else (a proxy's 404 or
// 403, Remit's own internal or unknown error, unauthenticated) leaves it
// queued: a needless resend with the same id is harmless, a payment
// dropped before its final answer is lost.
function finalAnswer(err: ConnectError): boolean {
  if (errorInfo(err).domain !== "remit.dev") return false;
  switch (err.code) {
    case Code.FailedPrecondition:
    case Code.InvalidArgument:
    case Code.PermissionDenied:
    case Code.NotFound:
    case Code.AlreadyExists:
    case Code.OutOfRange:
      return true;
    default:
      return false;
  }
}

// nextStep says, for a final refusal's reason, what happened and what to do.
const nextSteps: Record<string, string> = {
  INSUFFICIENT_FUNDS: "Not enough money is available. Nothing moved. Send a smaller amount, or wait for incoming money.",
  ACCOUNT_NOT_FOUND: "The payee's bank has no such account. Nothing moved. Check the account id with the payee.",
  BANK_NOT_FOUND: "No bank of that name is registered. Nothing moved. Check the bank name.",
  CURRENCY_MISMATCH: "The payee's account holds another currency. Nothing moved. Ask the payee for an account in your currency.",
  BANK_UNAVAILABLE: "A bank did not answer in time. Nothing moved. Try again in a minute.",
  SAME_ACCOUNT: "That is your own account. Nothing moved. Choose another payee.",
  BALANCE_OVERFLOW: "The payee's balance cannot take that much. Nothing moved. Send a smaller amount.",
  EXPIRED: "The payment took too long and was cancelled. Nothing moved. Send it again.",
  DECLINED_BY_BANK: "A bank declined it. Nothing moved. Contact your bank.",
  TRANSACTION_ID_CONFLICT: "A bank holds another payment under this id. An operator will reconcile it; do not resend.",
  IDEMPOTENCY_KEY_REUSED: "This transaction id was used for another request. Nothing moved. Send the payment again.",
  PERMISSION_DENIED: "You may not do that with this login.",
  ACCOUNT_CLOSED: "The account is closed at its bank. Nothing moved. Ask the payee for another account.",
  REFUND_EXCEEDS_PAYMENT: "That is more than what is left to refund of this payment. Nothing moved.",
  PAYMENT_NOT_REFUNDABLE: "Only a payment that succeeded can be refunded, and a refund cannot be refunded. Nothing moved.",
  NOT_FOUND: "No such payment among yours. Check the transaction id.",
  WEAK_PASSWORD: "Choose a longer or less common password: at least 12 characters, not a well-known password.",
  ENROLLMENT_CODE_INVALID: "The enrollment code is not valid for that account: it may be mistyped, expired or used. Ask your bank for a new one.",
  CLIENT_ID_TAKEN: "That client id is taken. Choose another.",
  ACCOUNT_ALREADY_LINKED: "That account already belongs to a customer. Contact your bank.",
  INVALID_CREDENTIALS: "The current password is wrong.",
  ACCOUNT_EXISTS: "An account with that id exists at the bank already.",
  ACCOUNT_NOT_EMPTY: "The account still holds money (or payments in flight). Withdraw it first.",
  LOGIN_LOCKED: "Too many failed attempts from here. Wait a while and try again.",
};

function explain(err: ConnectError): string {
  const { reason } = errorInfo(err);
  const step = nextSteps[reason];
  const head = reason ? `Declined (${reason})` : `Refused (${Code[err.code]})`;
  return step ? `${head}: ${step}` : `${head}: ${err.rawMessage}`;
}

// handleAuth ends the session when the gateway no longer accepts the token.
function handleAuth(err: ConnectError): boolean {
  if (err.code !== Code.Unauthenticated || !session) return false;
  logout("Your session has ended: log in again. Queued payments stay queued and are sent after you log in.");
  return true;
}

// ---- session ----

function saveSession(): void {
  if (session) sessionStorage.setItem(sessionKey, JSON.stringify(session));
  else sessionStorage.removeItem(sessionKey);
}

function loadSession(): Session | undefined {
  try {
    const s = sessionStorage.getItem(sessionKey);
    return s ? (JSON.parse(s) as Session) : undefined;
  } catch {
    return undefined;
  }
}

function isStaff(): boolean {
  return !!session && session.roles.some((r) => r === Role.ADMIN || r === Role.AUDITOR);
}

function enter(): void {
  if (!session) return;
  const customer = session.bank !== "";
  show(["login", "register"], false);
  show(["logout", "who", "password"], true);
  show(["wallet", "send", "feed", "history"], customer);
  show(["staff"], isStaff());
  show(["adjust", "manage"], session.roles.includes(Role.ADMIN));
  $("who").textContent = customer ? `${session.clientId} · ${session.bank}/${session.accountId}` : session.clientId;
  $("account").textContent = customer ? `Account ${session.bank}/${session.accountId}` : "";
  if (customer) {
    void refreshBalance();
    void refreshHistory();
    void renderQueue();
    void flush();
    startWatch();
  }
  if (isStaff()) void refreshBanks();
}

function logout(message = ""): void {
  const s = session;
  session = undefined;
  saveSession();
  watchAbort?.abort();
  for (const id of ["queue", "incoming", "payments", "banks"]) $(id).replaceChildren();
  incoming.clear();
  show(["wallet", "send", "feed", "history", "staff", "adjust", "manage", "password", "logout", "who", "older"], false);
  show(["login", "register"], true);
  say("login-msg", message, message ? "bad" : "");
  if (s && !message) void authClient.logout({}, { headers: { Authorization: "Bearer " + s.token } }).catch(() => {});
}

async function login(e: SubmitEvent): Promise<void> {
  e.preventDefault();
  const clientId = $<HTMLInputElement>("login-id").value.trim();
  const pw = $<HTMLInputElement>("login-pw");
  say("login-msg", "Logging in…");
  const password = pw.value;
  pw.value = "";
  await logIn(clientId, password, "login-msg");
}

// logIn logs clientId in and enters the wallet; a failure is said in msg.
async function logIn(clientId: string, password: string, msg: string): Promise<void> {
  try {
    const res = await authClient.login({ clientId, password });
    session = {
      token: res.accessToken,
      clientId: res.client?.clientId ?? clientId,
      bank: res.client?.account?.bank ?? "",
      accountId: res.client?.account?.accountId ?? "",
      roles: res.client?.roles ?? [],
      currency: "",
    };
    saveSession();
    say(msg, "");
    enter();
  } catch (err) {
    const ce = ConnectError.from(err);
    say(msg, ce.code === Code.Unauthenticated ? "Wrong client id or password." : ce.rawMessage, "bad");
  }
}

// register signs a new customer up with the bank's enrollment code, then
// logs in with the same credentials.
async function register(e: SubmitEvent): Promise<void> {
  e.preventDefault();
  const clientId = $<HTMLInputElement>("reg-id").value.trim();
  const pw = $<HTMLInputElement>("reg-pw");
  const account = { bank: $<HTMLInputElement>("reg-bank").value.trim(), accountId: $<HTMLInputElement>("reg-account").value.trim() };
  const code = $<HTMLInputElement>("reg-code");
  say("register-msg", "Signing up…");
  try {
    await authClient.register({ clientId, password: pw.value, account, enrollmentCode: code.value.trim() });
  } catch (err) {
    say("register-msg", explain(ConnectError.from(err)), "bad");
    return;
  }
  const password = pw.value;
  pw.value = "";
  code.value = "";
  say("register-msg", `Signed up as ${clientId} with ${ref(account)}. Logging in…`, "ok");
  await logIn(clientId, password, "register-msg");
}

async function changePassword(e: SubmitEvent): Promise<void> {
  e.preventDefault();
  const current = $<HTMLInputElement>("pw-current");
  const next = $<HTMLInputElement>("pw-new");
  try {
    const res = await authClient.changePassword({ currentPassword: current.value, newPassword: next.value });
    current.value = "";
    next.value = "";
    say("password-msg", `Password changed. ${res.revokedSessions} other session(s) ended; this one stays.`, "ok");
  } catch (err) {
    const ce = ConnectError.from(err);
    // A wrong current password is unauthenticated too, but the session
    // stays valid: only say so.
    if (errorInfo(ce).reason !== "INVALID_CREDENTIALS" && handleAuth(ce)) return;
    say("password-msg", explain(ce), "bad");
  }
}

// ---- wallet ----

async function refreshBalance(): Promise<void> {
  const s = session;
  if (!s) return;
  try {
    const res = await payments.checkBalance({}, { headers: { Authorization: "Bearer " + s.token } });
    if (session !== s) return; // another login since: not this user's balance
    s.currency = res.currency;
    saveSession();
    $("balance").textContent = formatMoney(res.balance, res.currency);
    $("available").textContent = formatMoney(res.available, res.currency);
  } catch (err) {
    const ce = ConnectError.from(err);
    if (session === s && !handleAuth(ce)) say("status", "Could not read the balance: " + ce.rawMessage, "bad");
  }
}

// ---- send, with the outbox ----

let flushing = false;
// flushAgain is set by a flush asked for while another runs: that one's
// list may lack the payment just queued, so it runs again when done.
let flushAgain = false;
let retryTimer: number | undefined;
let backoff = 1000;
// submitting is set while a submitted payment is being queued, so that a
// second submit of the same form (a double click, Enter pressed twice)
// before it is saved and the form cleared makes no second payment.
let submitting = false;

async function send(e: SubmitEvent): Promise<void> {
  e.preventDefault();
  if (!session || submitting) return;
  submitting = true;
  try {
    if (!(await queuePayment(e.target as HTMLFormElement))) return;
  } finally {
    submitting = false;
  }
  say("send-msg", "Sending…");
  await renderQueue();
  clearTimeout(retryTimer);
  backoff = 1000;
  await flush();
}

// queuePayment saves the form's payment in the outbox and clears the form;
// false if there is nothing to send.
async function queuePayment(form: HTMLFormElement): Promise<boolean> {
  if (!session) return false;
  if (!session.currency) {
    say("send-msg", "Your balance has not loaded yet, so the currency is not known: try again in a moment.", "bad");
    return false;
  }
  let amount: bigint;
  try {
    amount = parseAmount($<HTMLInputElement>("amount").value, session.currency);
  } catch (err) {
    say("send-msg", (err as Error).message, "bad");
    return false;
  }
  const bank = $<HTMLInputElement>("payee-bank").value.trim();
  const account = $<HTMLInputElement>("payee-account").value.trim();
  const description = $<HTMLInputElement>("description").value;
  const problem = paymentProblem(bank, account, amount, description);
  if (problem) {
    say("send-msg", problem + " Nothing was sent.", "bad");
    return false;
  }
  // The id is made once, here, and saved with the payment before the
  // first send: every resend of this payment carries it.
  const p: outbox.Pending = {
    transactionId: crypto.randomUUID(),
    clientId: session.clientId,
    bank,
    account,
    amount,
    currency: session.currency,
    description,
    created: Date.now(),
    attempts: 0,
    lastError: "",
  };
  await outbox.save(p);
  form.reset();
  return true;
}

// flush sends the queued payments, oldest first, until one cannot get an
// answer; then it tries again later.
// Each payment is sent with the token of the session that listed it; the
// loop stops as soon as that session has ended (a logout, another login),
// so no payment goes out under another user's token.
async function flush(): Promise<void> {
  const s = session;
  if (!s) return;
  if (flushing) {
    flushAgain = true;
    return;
  }
  flushing = true;
  flushAgain = false;
  clearTimeout(retryTimer);
  try {
    const queued = await outbox.list(s.clientId);
    if (queued.length > 0 && !navigator.onLine) {
      // The "online" event flushes again.
      say("send-msg", "Queued: this browser is offline. It is sent, with the same transaction id, when the browser is back online.", "queued");
      return;
    }
    for (const p of queued) {
      if (session !== s) return;
      if (!(await sendOne(s, p))) {
        flushAgain = false; // the retry timer sends the rest
        if (session === s) {
          retryTimer = window.setTimeout(() => void flush(), backoff);
          backoff = Math.min(backoff * 2, 5000);
        }
        return;
      }
    }
    backoff = 1000;
  } finally {
    flushing = false;
    // Another user who logged in while this loop ran has a queue too, and
    // a payment queued while it ran may not have been in its list.
    if (session && (session !== s || flushAgain)) void flush();
    else await renderQueue();
  }
}

// sendOne sends p once, as s; true once p has its final answer.
async function sendOne(s: Session, p: outbox.Pending): Promise<boolean> {
  // What the page says about p, only while s is still the user of the page.
  const tell = (text: string, kind: "ok" | "bad" | "queued") => {
    if (session === s) say("send-msg", text, kind);
  };
  p.attempts++;
  // Another tab of this user may have finished p since it was listed.
  if (!(await outbox.update(p))) return true;
  try {
    const res = await payments.makePayment(
      {
        transactionId: p.transactionId,
        payee: { bank: p.bank, accountId: p.account },
        amount: p.amount,
        currency: p.currency,
        description: p.description,
      },
      { timeoutMs: 20000, headers: { Authorization: "Bearer " + s.token } },
    );
    const pay = res.payment;
    if (!pay || pay.status === PaymentStatus.PROCESSING) {
      // Not an outcome (the gateway does not answer so today): ask again
      // with the same id.
      p.lastError = "no outcome yet";
      await outbox.update(p);
      tell("Queued: the gateway has not decided yet. It is asked again with the same transaction id.", "queued");
      return false;
    }
    await outbox.remove(p.transactionId);
    // The list shows it gone as soon as it is, not when the loop ends.
    if (session === s) void renderQueue();
    tell(`Sent ${formatMoney(p.amount, p.currency)} to ${p.bank}/${p.account}. ` +
      `Status: ${statusText(pay)}. Transaction ${p.transactionId}.`, "ok");
    void refreshBalance();
    void refreshHistory();
    return true;
  } catch (err) {
    const ce = ConnectError.from(err);
    if (!finalAnswer(ce)) {
      // Not a final answer (see finalAnswer): keep p, same id. An
      // unauthenticated one also ends s, if it is still the page's session.
      p.lastError = ce.rawMessage || Code[ce.code];
      await outbox.update(p);
      if (ce.code === Code.Unauthenticated) {
        if (session === s) handleAuth(ce);
        return false;
      }
      tell(retryable(ce)
        ? `Queued: the gateway did not answer (${p.lastError}). It is sent again with the same transaction id until it gets a final answer.`
        : `Queued: no final answer yet (${Code[ce.code]}: ${p.lastError}). It is sent again with the same transaction id until it gets one.`, "queued");
      return false;
    }
    await outbox.remove(p.transactionId);
    if (session === s) void renderQueue();
    tell(explain(ce), "bad");
    void refreshBalance();
    void refreshHistory();
    return true;
  }
}

async function renderQueue(): Promise<void> {
  if (!session) return;
  const items = (await outbox.list(session.clientId)).map((p) =>
    h("li", { "data-tx": p.transactionId, "data-status": "queued", class: "queued" },
      h("strong", {}, "Queued "), `${formatMoney(p.amount, p.currency)} to ${p.bank}/${p.account}`,
      h("span", { class: "desc" }, p.description),
      h("span", { class: "hint" }, `Transaction ${p.transactionId} · ${p.attempts} attempt(s)` +
        (p.lastError ? ` · last error: ${p.lastError}` : ""))));
  $("queue").replaceChildren(...items);
}

// ---- history ----

let nextPage = "";

function statusText(p: Payment | undefined): string {
  if (!p) return "unknown";
  switch (p.status) {
    case PaymentStatus.SUCCEEDED: return "succeeded";
    case PaymentStatus.FAILED: return "failed (" + (FailureReason[p.failureReason] ?? "unknown").toLowerCase().replaceAll("_", " ") + ")";
    case PaymentStatus.PROCESSING: return "processing";
    default: return "unknown";
  }
}

function paymentItem(p: Payment): HTMLElement {
  const sent = isMine(p.payer);
  const who = sent ? "To " + ref(p.payee) : "From " + ref(p.payer);
  const refund = p.refundedTransactionId !== "";
  const what = refund ? (sent ? "Refunded" : "Refund received") : sent ? "Sent" : "Received";
  const li = h("li", { "data-tx": p.transactionId, "data-status": statusText(p), "data-dir": sent ? "sent" : "received" },
    h("strong", {}, `${what} ${formatMoney(p.amount, p.currency)}`), " ", who,
    h("span", { class: "desc" }, p.description),
    h("span", { class: "hint" }, `${when(p.createTime)} · ${statusText(p)}` +
      (refund ? ` · refund of ${p.refundedTransactionId}` : "") +
      (p.amountRefunded > 0n ? ` · ${formatMoney(p.amountRefunded, p.currency)} refunded` : "") +
      (p.acknowledgeTime ? ` · acknowledged ${when(p.acknowledgeTime)}` : sent && p.status === PaymentStatus.SUCCEEDED ? " · not acknowledged yet" : "")));
  const left = p.amount - p.amountRefunded;
  if (!sent && !refund && p.status === PaymentStatus.SUCCEEDED && left > 0n) {
    // Fills the refund form with this payment and what is left of it.
    const b = h("button", { type: "button", class: "refund" }, "Refund…") as HTMLButtonElement;
    b.setAttribute("aria-label", `Refund ${formatMoney(p.amount, p.currency)} from ${ref(p.payer)}`);
    b.addEventListener("click", () => {
      $<HTMLInputElement>("refund-tx").value = p.transactionId;
      $<HTMLInputElement>("refund-amount").value = plainAmount(left, p.currency);
      $<HTMLInputElement>("refund-amount").focus();
    });
    li.append(" ", b);
  }
  return li;
}

// The last refund that got no answer: the same form sent again reuses its
// refund id, so a retry never refunds twice.
let unansweredRefund: { key: string; id: string } | undefined;

async function refund(e: SubmitEvent): Promise<void> {
  e.preventDefault();
  if (!session) return;
  const transactionId = $<HTMLInputElement>("refund-tx").value.trim();
  const reason = Number($<HTMLSelectElement>("refund-reason").value) as RefundReason;
  const currency = session.currency || "usd";
  let amount: bigint;
  try {
    amount = parseAmount($<HTMLInputElement>("refund-amount").value, currency);
  } catch (err) {
    say("refund-msg", (err as Error).message, "bad");
    return;
  }
  const key = JSON.stringify([transactionId, amount.toString(), reason]);
  const id = unansweredRefund?.key === key ? unansweredRefund.id : crypto.randomUUID();
  unansweredRefund = { key, id };
  say("refund-msg", "Refunding…");
  try {
    const res = await payments.refundPayment({ refundId: id, transactionId, amount, reason });
    unansweredRefund = undefined;
    const r = res.refund;
    say("refund-msg", `Refunded ${formatMoney(amount, r?.currency ?? currency)} to ${ref(r?.payee)} (refund ${id}).`, "ok");
    void refreshBalance();
    void refreshHistory();
  } catch (err) {
    const ce = ConnectError.from(err);
    if (handleAuth(ce)) return;
    if (!finalAnswer(ce)) {
      say("refund-msg", `No final answer (${Code[ce.code]}: ${ce.rawMessage}): press Refund again to retry with the same refund id.`, "queued");
      return;
    }
    unansweredRefund = undefined;
    say("refund-msg", explain(ce), "bad");
  }
}

async function refreshHistory(more = false): Promise<void> {
  const s = session;
  if (!s) return;
  try {
    const res = await payments.listPayments({ pageSize: 10, pageToken: more ? nextPage : "" },
      { headers: { Authorization: "Bearer " + s.token } });
    if (session !== s) return; // another login since: not this user's history
    const items = res.payments.map(paymentItem);
    if (more) $("payments").append(...items);
    else $("payments").replaceChildren(...items);
    if (!more && items.length === 0) $("payments").append(h("li", {}, "No payments yet."));
    nextPage = res.nextPageToken;
    $("older").hidden = nextPage === "";
  } catch (err) {
    const ce = ConnectError.from(err);
    if (session === s && !handleAuth(ce)) say("status", "Could not read the history: " + ce.rawMessage, "bad");
  }
}

// ---- live feed ----

const incoming = new Map<string, HTMLElement>(); // by transaction id, oldest first
const maxIncoming = 50;

function incomingItem(p: Payment): HTMLElement {
  const li = h("li", { "data-tx": p.transactionId, "data-ack": p.acknowledgeTime ? "yes" : "no" },
    h("strong", {}, formatMoney(p.amount, p.currency)), ` from ${ref(p.payer)}`,
    h("span", { class: "desc" }, p.description),
    h("span", { class: "hint" }, when(p.completeTime ?? p.createTime)));
  if (p.acknowledgeTime) {
    li.append(h("span", { class: "ok" }, ` · acknowledged ${when(p.acknowledgeTime)}`));
  } else {
    const b = h("button", { type: "button" }, "Acknowledge") as HTMLButtonElement;
    b.setAttribute("aria-label", `Acknowledge ${formatMoney(p.amount, p.currency)} from ${ref(p.payer)}`);
    b.addEventListener("click", () => void acknowledge(p.transactionId, b));
    li.append(" ", b);
  }
  return li;
}

function upsertIncoming(p: Payment): void {
  const li = incomingItem(p);
  const old = incoming.get(p.transactionId);
  if (old) old.replaceWith(li);
  else $("incoming").prepend(li);
  incoming.set(p.transactionId, li);
  // The newest maxIncoming stay; the history has the rest.
  for (const [id, e] of incoming) {
    if (incoming.size <= maxIncoming) break;
    e.remove();
    incoming.delete(id);
  }
}

async function acknowledge(id: string, b: HTMLButtonElement): Promise<void> {
  b.disabled = true;
  try {
    const res = await payments.acknowledgePayment({ transactionId: id });
    if (res.payment) upsertIncoming(res.payment);
    void refreshHistory();
  } catch (err) {
    b.disabled = false;
    const ce = ConnectError.from(err);
    if (!handleAuth(ce)) say("status", "Could not acknowledge: " + ce.rawMessage, "bad");
  }
}

let historyTimer: number | undefined;
function onEvent(ev: WatchPaymentsResponse): void {
  const p = ev.payment;
  if (!p) return;
  if (isMine(p.payee) && !isMine(p.payer) &&
    (ev.type === PaymentEventType.SUCCEEDED || ev.type === PaymentEventType.ACKNOWLEDGED)) {
    upsertIncoming(p);
  }
  clearTimeout(historyTimer);
  historyTimer = window.setTimeout(() => {
    void refreshBalance();
    void refreshHistory();
  }, 200);
}

function startWatch(): void {
  watchAbort?.abort();
  const ctl = new AbortController();
  watchAbort = ctl;
  void (async () => {
    let cursor = 0n;
    let delay = 1000;
    while (!ctl.signal.aborted && session) {
      say("feed-state", "Live: payments to you appear here as they arrive.");
      try {
        for await (const ev of payments.watchPayments({ afterEventId: cursor }, { signal: ctl.signal })) {
          cursor = ev.eventId;
          delay = 1000;
          onEvent(ev);
        }
      } catch (err) {
        const ce = ConnectError.from(err);
        if (ctl.signal.aborted || handleAuth(ce)) return;
      }
      say("feed-state", "Reconnecting to the gateway…", "queued");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
      // The gateway may be back: queued payments go out too.
      void flush();
    }
  })();
}

// ---- staff ----

async function refreshBanks(): Promise<void> {
  try {
    const res = await admin.listBanks({});
    $("banks").replaceChildren(...res.banks.map((b) =>
      h("tr", { "data-bank": b.name },
        h("td", {}, b.name), h("td", {}, b.url),
        h("td", { class: b.status === BankStatus.SERVING ? "ok" : "bad" }, b.status === BankStatus.SERVING ? "serving" : "not serving"),
        h("td", {}, when(b.lastSeenTime)))));
  } catch (err) {
    const ce = ConnectError.from(err);
    if (!handleAuth(ce)) say("status", "Could not list the banks: " + ce.rawMessage, "bad");
  }
}

async function lookup(e: SubmitEvent): Promise<void> {
  e.preventDefault();
  const account = { bank: $<HTMLInputElement>("lookup-bank").value.trim(), accountId: $<HTMLInputElement>("lookup-account").value.trim() };
  try {
    const res = await payments.checkBalance({ account });
    say("lookup-msg", `${ref(account)}: balance ${formatMoney(res.balance, res.currency)}, available ${formatMoney(res.available, res.currency)}`, "ok");
  } catch (err) {
    const ce = ConnectError.from(err);
    if (!handleAuth(ce)) say("lookup-msg", explain(ce), "bad");
  }
}

// The admin's last adjustment that got no answer: the same form sent again
// reuses its transaction id, so a retry never applies it twice.
let unanswered: { key: string; id: string } | undefined;

async function adjust(e: SubmitEvent): Promise<void> {
  e.preventDefault();
  const account = { bank: $<HTMLInputElement>("adjust-bank").value.trim(), accountId: $<HTMLInputElement>("adjust-account").value.trim() };
  const currency = $<HTMLInputElement>("adjust-currency").value.trim().toLowerCase();
  const debit = $<HTMLSelectElement>("adjust-direction").value === "debit";
  let amount: bigint;
  try {
    amount = parseAmount($<HTMLInputElement>("adjust-amount").value, currency);
  } catch (err) {
    say("adjust-msg", (err as Error).message, "bad");
    return;
  }
  const key = JSON.stringify([account, currency, debit, amount.toString()]);
  const id = unanswered?.key === key ? unanswered.id : crypto.randomUUID();
  unanswered = { key, id };
  try {
    const res = await admin.updateBalance({ transactionId: id, account, direction: debit ? Direction.DEBIT : Direction.CREDIT, amount, currency });
    unanswered = undefined;
    say("adjust-msg", `${debit ? "Withdrew" : "Deposited"} ${formatMoney(amount, currency)}: ${ref(account)} now holds ${formatMoney(res.balance, res.currency)}.`, "ok");
  } catch (err) {
    const ce = ConnectError.from(err);
    if (handleAuth(ce)) return;
    if (!finalAnswer(ce)) {
      // Not a final answer (finalAnswer, as for payments): the adjustment
      // may have been applied, so only the same id may be sent again.
      say("adjust-msg", `No final answer (${Code[ce.code]}: ${ce.rawMessage}): press Apply again to retry with the same transaction id.`, "queued");
      return;
    }
    unanswered = undefined;
    say("adjust-msg", explain(ce), "bad");
  }
}

// ---- accounts and users (admins) ----

let unansweredOpen: { key: string; id: string } | undefined;

async function manageAccount(e: SubmitEvent): Promise<void> {
  e.preventDefault();
  const account = { bank: $<HTMLInputElement>("acct-bank").value.trim(), accountId: $<HTMLInputElement>("acct-id").value.trim() };
  const currency = $<HTMLInputElement>("acct-currency").value.trim().toLowerCase();
  const close = $<HTMLSelectElement>("acct-action").value === "close";
  try {
    if (close) {
      await admin.closeAccount({ account });
      say("account-msg", `Closed ${ref(account)}.`, "ok");
      return;
    }
    const key = JSON.stringify([account, currency]);
    const requestId = unansweredOpen?.key === key ? unansweredOpen.id : crypto.randomUUID();
    unansweredOpen = { key, id: requestId };
    const res = await admin.openAccount({ requestId, account, currency, owner: "" });
    unansweredOpen = undefined;
    say("account-msg", `Opened ${ref(account)} in ${res.account?.currency ?? currency}, balance ${formatMoney(res.account?.balance ?? 0n, currency)}.`, "ok");
  } catch (err) {
    const ce = ConnectError.from(err);
    if (handleAuth(ce)) return;
    if (finalAnswer(ce)) unansweredOpen = undefined;
    say("account-msg", explain(ce), "bad");
  }
}

async function manageUser(e: SubmitEvent): Promise<void> {
  e.preventDefault();
  const clientId = $<HTMLInputElement>("user-id").value.trim();
  const disable = $<HTMLSelectElement>("user-action").value === "disable";
  try {
    if (disable) {
      const res = await admin.disableUser({ clientId });
      say("user-msg", `Disabled ${clientId}: ${res.revokedSessions} session(s) ended.`, "ok");
    } else {
      await admin.enableUser({ clientId });
      say("user-msg", `Enabled ${clientId}.`, "ok");
    }
  } catch (err) {
    const ce = ConnectError.from(err);
    if (!handleAuth(ce)) say("user-msg", explain(ce), "bad");
  }
}

// ---- start ----

function main(): void {
  $<HTMLFormElement>("login-form").addEventListener("submit", (e) => void login(e));
  $<HTMLFormElement>("send-form").addEventListener("submit", (e) => void send(e));
  $<HTMLFormElement>("lookup-form").addEventListener("submit", (e) => void lookup(e));
  $<HTMLFormElement>("adjust-form").addEventListener("submit", (e) => void adjust(e));
  $<HTMLFormElement>("register-form").addEventListener("submit", (e) => void register(e));
  $<HTMLFormElement>("password-form").addEventListener("submit", (e) => void changePassword(e));
  $<HTMLFormElement>("refund-form").addEventListener("submit", (e) => void refund(e));
  $<HTMLFormElement>("account-form").addEventListener("submit", (e) => void manageAccount(e));
  $<HTMLFormElement>("user-form").addEventListener("submit", (e) => void manageUser(e));
  $("logout").addEventListener("click", () => logout());
  $("refresh-balance").addEventListener("click", () => void refreshBalance());
  $("refresh-history").addEventListener("click", () => void refreshHistory());
  $("older").addEventListener("click", () => void refreshHistory(true));
  $("refresh-banks").addEventListener("click", () => void refreshBanks());
  window.addEventListener("online", () => {
    backoff = 1000;
    void flush();
  });
  session = loadSession();
  if (session) enter();
  else show(["login", "register"], true);
}

main();
