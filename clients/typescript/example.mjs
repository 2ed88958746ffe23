// A Remit client in Node: logs in, checks the balance, pays with a
// client-made transaction id and retries safely with that same id.
//
// Generate the client first (from the repository root; see clients/README.md):
//
//   npm ci --prefix clients/typescript
//   node_modules/.bin/buf generate --template clients/typescript/buf.gen.yaml
//
// Then, against `remit up` in the current directory:
//
//   REMIT_PASSWORD=ALICE-PASSWORD node clients/typescript/example.mjs
//
// Settings (environment):
//   REMIT_GATEWAY     gateway URL (https://127.0.0.1:8443)
//   REMIT_CA          CA certificate to trust (.remit/certs/ca.pem)
//   REMIT_CLIENT_ID   who logs in (alice)
//   REMIT_PASSWORD    their password (required; in .remit/credentials.json)
//   REMIT_PAYEE       payee as BANK/ACCOUNT (bank-b/bob)
//   REMIT_AMOUNT      amount in minor units, cents for usd (1250)
//   REMIT_PROTOCOL    connect (Connect binary over HTTP/2) or grpc (connect)
//   REMIT_FIRST_TIMEOUT_MS  deadline of the first attempt only, to see a
//                     lost answer retried (15000, as every later attempt)

import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";

import { AuthService } from "./gen/remit/gateway/v1/auth_pb.js";
import { PaymentService } from "./gen/remit/gateway/v1/payment_pb.js";
import { PaymentStatusSchema } from "./gen/remit/gateway/v1/types_pb.js";

const env = (name, fallback) => process.env[name] || fallback;
const gateway = env("REMIT_GATEWAY", "https://127.0.0.1:8443");
const clientId = env("REMIT_CLIENT_ID", "alice");
const password = env("REMIT_PASSWORD", "");
const [payeeBank, payeeAccount] = env("REMIT_PAYEE", "bank-b/bob").split("/");
const amount = BigInt(env("REMIT_AMOUNT", "1250"));
const protocol = env("REMIT_PROTOCOL", "connect");
const timeoutMs = 15000;
const firstTimeoutMs = Number(env("REMIT_FIRST_TIMEOUT_MS", String(timeoutMs)));
if (!password) {
  fail("set REMIT_PASSWORD (the client's password from .remit/credentials.json)");
}

// One transport for every call. TLS trusts only the Remit dev CA; the
// interceptor adds the bearer token once we have one.
let token = "";
const bearer = (next) => async (req) => {
  if (token) {
    req.header.set("Authorization", `Bearer ${token}`);
  }
  return next(req);
};
const options = {
  baseUrl: gateway,
  nodeOptions: { ca: readFileSync(env("REMIT_CA", ".remit/certs/ca.pem")) },
  interceptors: [bearer],
};
const transport =
  protocol === "grpc"
    ? createGrpcTransport(options)
    : createConnectTransport({ ...options, httpVersion: "2" });
const auth = createClient(AuthService, transport);
const payments = createClient(PaymentService, transport);

const login = await auth.login({ clientId, password }, { timeoutMs });
token = login.accessToken;
const account = login.client?.account;
console.log(`logged in as ${clientId} (${account?.bank}/${account?.accountId}) over ${protocol}`);

const before = await payments.checkBalance({}, { timeoutMs });
console.log(`balance ${money(before.balance, before.currency)}, available ${money(before.available, before.currency)}`);

// The id is made here, once, before the first attempt, and reused on every
// retry: the gateway pays at most once per id, so a retry after a lost
// answer cannot pay twice.
const request = {
  transactionId: randomUUID(),
  payee: { bank: payeeBank, accountId: payeeAccount },
  amount,
  currency: before.currency,
  description: "example.mjs",
};
const paid = await pay(request, firstTimeoutMs);
console.log(`paid ${paid.transactionId}: ${statusName(paid.status)}, ${money(paid.amount, paid.currency)} to ${payeeBank}/${payeeAccount}`);

// As if that answer had been lost: send the very same request again. The
// gateway answers with the payment it already made and moves nothing.
const again = await pay(request, timeoutMs);
if (again.transactionId !== paid.transactionId || again.createTime?.nanos !== paid.createTime?.nanos || again.createTime?.seconds !== paid.createTime?.seconds) {
  fail(`the retry returned another payment: ${again.transactionId}`);
}
console.log(`retry of ${paid.transactionId}: the same payment, nothing moved twice`);

const after = await payments.checkBalance({}, { timeoutMs });
console.log(`balance ${money(after.balance, after.currency)}, available ${money(after.available, after.currency)}`);

// pay sends req until it has a final answer (the first attempt with a
// deadline of firstAttemptMs, the others timeoutMs). It retries, with the same id
// and a growing pause, only what is safe to retry: unavailable,
// deadline_exceeded, and aborted REQUEST_IN_PROGRESS (the payment with this
// id is still running). A decline (failed_precondition) is final for this id.
async function pay(req, firstAttemptMs) {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await payments.makePayment(req, { timeoutMs: attempt === 1 ? firstAttemptMs : timeoutMs });
      if (attempt > 1) {
        console.log(`attempt ${attempt} of ${req.transactionId} answered`);
      }
      return res.payment;
    } catch (e) {
      const err = ConnectError.from(e);
      const reason = reasonOf(err);
      if (err.code === Code.FailedPrecondition && reason === "TRANSACTION_ID_CONFLICT") {
        // Not a decline: a new id could pay twice. Ask an operator first.
        fail(`a bank holds id ${req.transactionId} for another transaction: ${err.message}`);
      }
      const retry =
        err.code === Code.Unavailable ||
        err.code === Code.DeadlineExceeded ||
        (err.code === Code.Aborted && reason === "REQUEST_IN_PROGRESS");
      if (err.code === Code.FailedPrecondition) {
        // Declined: final for this id; the message says what to do next.
        fail(`payment ${req.transactionId} declined (${reason}): ${err.rawMessage}`);
      }
      if (!retry) {
        fail(`payment ${req.transactionId}: ${Code[err.code]} ${reason}: ${err.rawMessage}`);
      }
      if (attempt === 6) {
        fail(`giving up for now; retry later with the same id ${req.transactionId}: ${err.message}`);
      }
      const pauseMs = 200 * 2 ** (attempt - 1);
      console.log(`attempt ${attempt} of ${req.transactionId}: ${Code[err.code]}${reason ? ` ${reason}` : ""}; retrying with the same id in ${pauseMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }
}

// reasonOf returns the reason of the google.rpc.ErrorInfo detail Remit puts
// on its errors (AIP-193), or "". ErrorInfo's schema is not generated here
// (googleapis is not in proto/), so read its field 1 (reason) off the wire.
function reasonOf(err) {
  for (const d of err.details) {
    if (d.desc || d.type !== "google.rpc.ErrorInfo") {
      continue;
    }
    const r = new BinaryReader(d.value);
    while (r.pos < r.len) {
      const [field, wireType] = r.tag();
      if (field === 1) {
        return r.string();
      }
      r.skip(wireType);
    }
  }
  return "";
}

// statusName is the proto name of a PaymentStatus, e.g. PAYMENT_STATUS_SUCCEEDED.
function statusName(status) {
  return PaymentStatusSchema.values.find((v) => v.number === status)?.name ?? String(status);
}

// money formats minor units with two decimals (usd, eur, ...).
function money(minor, currency) {
  const sign = minor < 0n ? "-" : "";
  const abs = minor < 0n ? -minor : minor;
  return `${sign}${abs / 100n}.${String(abs % 100n).padStart(2, "0")} ${currency}`;
}

function fail(message) {
  console.error(`example.mjs: ${message}`);
  process.exit(1);
}
