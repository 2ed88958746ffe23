#!/usr/bin/python3
"""A Remit client in Python over gRPC: logs in, checks the balance, pays with
a client-made transaction id and retries safely with that same id.

Generate the client first (from the repository root; see clients/README.md):

    node_modules/.bin/buf generate --template clients/python/buf.gen.yaml

Then, against `remit up` in the current directory:

    REMIT_PASSWORD=ALICE-PASSWORD /usr/bin/python3 clients/python/example.py

Use Debian's /usr/bin/python3: it sees python3-grpcio and python3-protobuf
(a pyenv or venv python does not, unless you install grpcio and a protobuf
runtime matching the protoc that generated the code).

Settings (environment):
    REMIT_GATEWAY     gateway URL (https://127.0.0.1:8443)
    REMIT_CA          CA certificate to trust (.remit/certs/ca.pem)
    REMIT_CLIENT_ID   who logs in (alice)
    REMIT_PASSWORD    their password (required; in .remit/credentials.json)
    REMIT_PAYEE       payee as BANK/ACCOUNT (bank-b/bob)
    REMIT_AMOUNT      amount in minor units, cents for usd (1250)
    REMIT_FIRST_TIMEOUT_MS  deadline of the first attempt only, to see a lost
                      answer retried (15000, as every later attempt)
"""

import os
import sys
import time
import urllib.parse
import uuid

# The generated code (clients/python/gen) is imported as top-level packages
# (remit.gateway.v1, buf.validate), as protoc and grpc_python_plugin write it.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402  (python3-grpcio)

from remit.gateway.v1 import auth_pb2, auth_pb2_grpc  # noqa: E402
from remit.gateway.v1 import payment_pb2, payment_pb2_grpc  # noqa: E402
from remit.gateway.v1 import types_pb2  # noqa: E402

TIMEOUT_S = 15.0


def main():
    gateway = os.environ.get("REMIT_GATEWAY") or "https://127.0.0.1:8443"
    client_id = os.environ.get("REMIT_CLIENT_ID") or "alice"
    password = os.environ.get("REMIT_PASSWORD") or ""
    payee_bank, _, payee_account = (os.environ.get("REMIT_PAYEE") or "bank-b/bob").partition("/")
    amount = int(os.environ.get("REMIT_AMOUNT") or "1250")
    first_timeout_s = int(os.environ.get("REMIT_FIRST_TIMEOUT_MS") or "15000") / 1000
    if not password:
        fail("set REMIT_PASSWORD (the client's password from .remit/credentials.json)")

    # gRPC over TLS trusting only the Remit dev CA. grpc wants host:port.
    with open(os.environ.get("REMIT_CA") or ".remit/certs/ca.pem", "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    target = urllib.parse.urlsplit(gateway).netloc
    with grpc.secure_channel(target, creds) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        payments = payment_pb2_grpc.PaymentServiceStub(channel)

        login = auth.Login(auth_pb2.LoginRequest(client_id=client_id, password=password), timeout=TIMEOUT_S)
        # The token goes with every later call as metadata.
        md = (("authorization", "Bearer " + login.access_token),)
        acct = login.client.account
        print(f"logged in as {client_id} ({acct.bank}/{acct.account_id}) over grpc")

        before = payments.CheckBalance(payment_pb2.CheckBalanceRequest(), metadata=md, timeout=TIMEOUT_S)
        print(f"balance {money(before.balance, before.currency)}, available {money(before.available, before.currency)}")

        # The id is made here, once, before the first attempt, and reused on
        # every retry: the gateway pays at most once per id, so a retry after
        # a lost answer cannot pay twice.
        request = payment_pb2.MakePaymentRequest(
            transaction_id=str(uuid.uuid4()),
            payee=types_pb2.AccountRef(bank=payee_bank, account_id=payee_account),
            amount=amount,
            currency=before.currency,
            description="example.py",
        )
        paid = pay(payments, request, md, first_timeout_s)
        status = types_pb2.PaymentStatus.Name(paid.status)
        print(f"paid {paid.transaction_id}: {status}, {money(paid.amount, paid.currency)} to {payee_bank}/{payee_account}")

        # As if that answer had been lost: send the very same request again.
        # The gateway answers with the payment it already made and moves
        # nothing.
        again = pay(payments, request, md, TIMEOUT_S)
        if again.transaction_id != paid.transaction_id or again.create_time != paid.create_time:
            fail(f"the retry returned another payment: {again.transaction_id}")
        print(f"retry of {paid.transaction_id}: the same payment, nothing moved twice")

        after = payments.CheckBalance(payment_pb2.CheckBalanceRequest(), metadata=md, timeout=TIMEOUT_S)
        print(f"balance {money(after.balance, after.currency)}, available {money(after.available, after.currency)}")


def pay(payments, request, md, first_timeout_s):
    """Sends request until it has a final answer (the first attempt with a
    deadline of first_timeout_s, the others TIMEOUT_S). It retries, with the
    same id and a growing pause, only what is safe to retry: UNAVAILABLE,
    DEADLINE_EXCEEDED, and ABORTED REQUEST_IN_PROGRESS (the payment with this
    id is still running). A decline (FAILED_PRECONDITION) is final for this
    id."""
    tx = request.transaction_id
    for attempt in range(1, 7):
        try:
            res = payments.MakePayment(request, metadata=md, timeout=first_timeout_s if attempt == 1 else TIMEOUT_S)
            if attempt > 1:
                print(f"attempt {attempt} of {tx} answered")
            return res.payment
        except grpc.RpcError as err:
            code, reason = err.code(), reason_of(err)
            if code == grpc.StatusCode.FAILED_PRECONDITION and reason == "TRANSACTION_ID_CONFLICT":
                # Not a decline: a new id could pay twice. Ask an operator first.
                fail(f"a bank holds id {tx} for another transaction: {err.details()}")
            if code == grpc.StatusCode.FAILED_PRECONDITION:
                # Declined: final for this id; the message says what to do next.
                fail(f"payment {tx} declined ({reason}): {err.details()}")
            retry = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) or (
                code == grpc.StatusCode.ABORTED and reason == "REQUEST_IN_PROGRESS"
            )
            if not retry:
                fail(f"payment {tx}: {code.name} {reason}: {err.details()}")
            if attempt == 6:
                fail(f"giving up for now; retry later with the same id {tx}: {code.name}")
            pause = 0.2 * 2 ** (attempt - 1)
            print(f"attempt {attempt} of {tx}: {code.name}{' ' + reason if reason else ''}; retrying with the same id in {int(pause * 1000)} ms")
            time.sleep(pause)
    raise AssertionError("unreachable")


def reason_of(err):
    """Returns the reason of the google.rpc.ErrorInfo detail Remit puts on its
    errors (AIP-193), or "". The details travel as a google.rpc.Status in the
    grpc-status-details-bin trailer. Debian has no googleapis-common-protos
    (on PyPI, grpcio-status's rpc_status.from_call does this), so this reads
    the three fields it needs off the wire: Status.details (3, repeated Any),
    Any.type_url (1) and value (2), ErrorInfo.reason (1)."""
    for key, value in err.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        for field, detail in _fields(value):
            if field != 3:
                continue
            any_fields = dict(_fields(detail))
            if any_fields.get(1, b"").endswith(b"/google.rpc.ErrorInfo"):
                return dict(_fields(any_fields.get(2, b""))).get(1, b"").decode()
    return ""


def _fields(buf):
    """Yields (field number, bytes) for each length-delimited field of a
    protobuf message, skipping the others."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire_type = key & 7
        if wire_type == 0:
            _, i = _varint(buf, i)
        elif wire_type == 1:
            i += 8
        elif wire_type == 5:
            i += 4
        elif wire_type == 2:
            n, i = _varint(buf, i)
            yield key >> 3, buf[i : i + n]
            i += n
        else:
            return  # groups: not in these messages


def _varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def money(minor, currency):
    """Formats minor units with two decimals (usd, eur, ...)."""
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d} {currency}"


def fail(message):
    print(f"example.py: {message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
