"""Starting a checkout and reading its state: validation, exact amounts per currency, the row we
keep and the request the provider gets (real PostgreSQL and Redis; the demo provider is the
real simulated one, recording what it was asked)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saldo import money
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.payments import CheckoutRequest, ProviderCheckout
from saldo.payments.simulated import SimulatedProvider
from saldo.references import payment_reference
from saldo.services import checkout
from saldo.services.ledger import apply_payment
from saldo.tables import CheckoutSession, Creditor, Debtor, Payment, SimulatedPayment
from saldo.worker import Queue, queue_name
from tests.services.helpers import make_account, make_invoice

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
RETURN = {k: "/pay/return/{reference}" for k in ("success", "pending", "failure")}


class RecordingProvider(SimulatedProvider):
    """The demo provider, keeping every checkout request it receives."""

    def __init__(self) -> None:
        self.requests: list[CheckoutRequest] = []

    async def create_checkout(self, request: CheckoutRequest) -> ProviderCheckout:
        self.requests.append(request)
        return await super().create_checkout(request)


@pytest.fixture
async def queue(db, redis):
    handle = Queue(db.redis_url, db.redis_prefix)
    yield handle
    await handle.close()


async def start(account, provider=None, **kwargs):
    provider = provider or RecordingProvider()
    params = {
        "debtor_ids": [account.debtor],
        "account_id": account.id,
        "choice": "balance",
        "provider": provider,
        "public_url": "https://saldo.example.com/",
        "return_urls": RETURN,
        "notification_url": "/webhooks/mercadopago",
        "now": NOW,
        **kwargs,
    }
    return await checkout.start_checkout(**params), provider


async def row_of(started) -> CheckoutSession:
    row = await CheckoutSession.objects().get(
        CheckoutSession.public_id == uuid.UUID(started.public_id)
    )
    assert row is not None
    return row


async def set_minimum(account, minimum: int) -> None:
    await Creditor.update({Creditor.min_online_payment: minimum}).where(
        Creditor.id == account.creditor
    )


# ---------------------------------------------------------------------------- amounts typed in


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1234.56", "ARS", 123456),
        ("1234,56", "ARS", 123456),
        ("1.234,56", "ARS", 123456),
        ("1,234.56", "MXN", 123456),
        ("$ 1.234,5", "ARS", 123450),
        ("12.345.678,90", "EUR", 1234567890),
        ("500", "EUR", 50000),
        ("10.000", "CLP", 10000),
        ("10,000", "CLP", 10000),
        ("1.500.000", "CLP", 1500000),
        ("CLP 7500", "CLP", 7500),
        ("45.000", "PYG", 45000),
    ],
)
def test_amounts_are_read_as_debtors_write_them(text, currency, minor):
    assert checkout.parse_money(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("10.5", "CLP"),  # pesos have no cents: refused, not rounded
        ("1,234", "MXN"),  # three decimals or a thousands separator? ambiguous: refused
        ("0.001", "ARS"),
        ("1.2.3", "ARS"),
        ("12,34,56", "ARS"),
        ("-5", "ARS"),
        ("1e3", "ARS"),
        ("", "ARS"),
    ],
)
def test_unclear_amounts_are_refused_on_the_amount_field(text, currency):
    with pytest.raises(ValidationFailed) as refused:
        checkout.parse_money(text, currency)
    assert refused.value.field == "amount"


@given(
    minor=st.integers(min_value=0, max_value=10**13),
    currency=st.sampled_from(sorted(money.EXPONENTS)),
    style=st.sampled_from(["plain", "comma", "es", "en"]),
)
def test_any_amount_written_in_a_usual_style_reads_back_exactly(minor, currency, style):
    digits = money.exponent(currency)
    value = money.to_decimal(minor, currency)
    whole, fraction = divmod(minor, 10**digits)
    frac = f"{fraction:0{digits}d}" if digits else ""
    grouped = f"{whole:,}"
    if style == "plain":
        text = str(value)
    elif style == "comma":
        text = f"{whole},{frac}" if digits else str(whole)
    elif style == "es":
        text = grouped.replace(",", ".") + (f",{frac}" if digits else "")
    else:
        text = grouped + (f".{frac}" if digits else "")
    if digits == 2 and style in {"es", "en"} and whole < 1000:
        text = f"{whole}{',' if style == 'es' else '.'}{frac}"
    assert checkout.parse_money(text, currency) == minor


def test_the_minimum_custom_amount_never_exceeds_the_balance():
    assert checkout.minimum_custom_amount(0, 5000) == 1
    assert checkout.minimum_custom_amount(2000, 5000) == 2000
    assert checkout.minimum_custom_amount(20000, 5000) == 5000


# ---------------------------------------------------------------------------- start_checkout


async def test_paying_the_balance_records_the_checkout_and_asks_the_provider(db):
    account = await make_account("ARS")
    await Debtor.update({Debtor.email: "ana@example.com"}).where(Debtor.id == account.debtor)
    await make_invoice(account, "B-1", 150_075, TODAY - dt.timedelta(days=10))
    await make_invoice(account, "B-2", 20_000, TODAY + dt.timedelta(days=10))
    started, provider = await start(account)

    assert (started.amount, started.currency) == (170_075, "ARS")
    assert started.init_point == f"/pay/simulated/{started.public_id}"
    row = await row_of(started)
    assert (row.account, row.amount, row.currency, row.choice, row.status) == (
        account.id,
        170_075,
        "ARS",
        "balance",
        "created",
    )
    assert (row.provider, row.provider_preference_id, row.init_point) == (
        "simulated",
        f"sim-{started.public_id}",
        started.init_point,
    )
    assert row.payer_email == "ana@example.com"
    assert row.expires_at == NOW + dt.timedelta(hours=72)
    assert json.loads(row.invoice_ids) == []

    [request] = provider.requests
    assert request.reference == started.public_id == request.idempotency_key
    assert request.currency == "ARS"
    assert [(i.amount) for i in request.items] == [170_075]
    assert sum(i.amount for i in request.items) == row.amount
    assert request.payer_email == "ana@example.com"
    assert request.back_urls == {
        k: f"https://saldo.example.com/pay/return/{started.public_id}" for k in RETURN
    }
    assert request.notification_url == "https://saldo.example.com/webhooks/mercadopago"
    assert request.expires_at == NOW + dt.timedelta(hours=72)


async def test_chosen_invoices_become_one_item_each_for_their_open_amount(db):
    account = await make_account("ARS")
    old = await make_invoice(account, "C-1", 100_000, TODAY - dt.timedelta(days=40))
    new = await make_invoice(account, "C-2", 50_050, TODAY - dt.timedelta(days=5))
    later = await make_invoice(account, "C-3", 70_000, TODAY + dt.timedelta(days=20))
    await apply_payment(
        account_id=account.id,
        provider="bank_transfer",
        provider_payment_id=f"partial-{account.id}",
        amount=30_001,
        received_at=NOW - dt.timedelta(days=1),
        preferred_invoice_ids=[old.id],
    )
    started, provider = await start(
        account, choice="invoices", invoice_ids=[str(new.id), str(old.id), str(new.id)]
    )
    [request] = provider.requests
    assert [(i.title, i.amount) for i in request.items] == [
        ("Factura C-1", 69_999),
        ("Factura C-2", 50_050),
    ]
    row = await row_of(started)
    assert row.amount == 69_999 + 50_050
    assert json.loads(row.invoice_ids) == [old.id, new.id]
    assert later.id not in json.loads(row.invoice_ids)


async def test_clp_amounts_are_whole_pesos_end_to_end(db):
    account = await make_account("CLP")
    await make_invoice(account, "CL-1", 159_990, TODAY - dt.timedelta(days=3))
    started, provider = await start(account, choice="amount", amount="10.000")
    assert (await row_of(started)).amount == 10_000
    [request] = provider.requests
    assert request.items[0].amount == 10_000
    assert request.currency == "CLP"
    with pytest.raises(ValidationFailed) as refused:
        await start(account, choice="amount", amount="9999,5")
    assert str(refused.value) == "Escriba el importe sin decimales, por ejemplo 15000."
    started, _ = await start(account, choice="balance")
    assert (await row_of(started)).amount == 159_990


async def test_a_custom_amount_must_be_between_the_creditors_minimum_and_the_balance(db):
    account = await make_account("ARS")
    await make_invoice(account, "M-1", 800_000, TODAY)
    await set_minimum(account, 50_000)
    with pytest.raises(ValidationFailed) as low:
        await start(account, choice="amount", amount="499,99")
    assert (low.value.field, str(low.value)) == (
        "amount",
        "El importe mínimo para pagar en línea es $\xa0500,00.",
    )
    started, _ = await start(account, choice="amount", amount="500")
    assert (await row_of(started)).amount == 50_000
    with pytest.raises(ValidationFailed) as high:
        await start(account, choice="amount", amount="8000,01")
    assert str(high.value) == "El importe no puede superar su saldo de $\xa08.000,00."
    started, _ = await start(account, choice="amount", amount="8000")
    assert (await row_of(started)).amount == 800_000


async def test_below_the_minimum_the_whole_small_balance_may_still_be_paid(db):
    account = await make_account("ARS")
    await make_invoice(account, "S-1", 12_000, TODAY)
    await set_minimum(account, 50_000)
    started, _ = await start(account, choice="amount", amount="120")
    assert (await row_of(started)).amount == 12_000
    options = await checkout.pay_options([account.debtor], today=TODAY)
    assert options.accounts[0].min_amount.minor == 12_000


async def test_nothing_to_pay_and_bad_choices_are_refused(db):
    account = await make_account("ARS")
    with pytest.raises(ValidationFailed) as nothing:
        await start(account)
    assert nothing.value.field == "choice"
    await make_invoice(account, "N-1", 10_000, TODAY)
    with pytest.raises(ValidationFailed) as unknown:
        await start(account, choice="everything")
    assert unknown.value.field == "choice"
    with pytest.raises(ValidationFailed) as none:
        await start(account, choice="invoices", invoice_ids=[])
    assert none.value.field == "invoice_ids"
    with pytest.raises(ValidationFailed) as garbage:
        await start(account, choice="invoices", invoice_ids=["1 OR 1=1"])
    assert garbage.value.field == "invoice_ids"
    assert await CheckoutSession.count().where(CheckoutSession.account == account.id) == 0


async def test_invoices_of_another_account_or_already_paid_are_refused(db):
    mine = await make_account("ARS")
    await make_invoice(mine, "P-1", 10_000, TODAY)
    paid = await make_invoice(mine, "P-2", 5_000, TODAY)
    await apply_payment(
        account_id=mine.id,
        provider="bank_transfer",
        provider_payment_id=f"full-{mine.id}",
        amount=5_000,
        received_at=NOW,
        preferred_invoice_ids=[paid.id],
    )
    other = await make_account("ARS")
    theirs = await make_invoice(other, "O-1", 10_000, TODAY)
    for invoice in (paid, theirs):
        with pytest.raises(ValidationFailed) as refused:
            await start(mine, choice="invoices", invoice_ids=[str(invoice.id)])
        assert refused.value.field == "invoice_ids"


async def test_another_debtors_account_and_checkout_are_not_found(db):
    mine = await make_account("ARS")
    other = await make_account("ARS")
    await make_invoice(other, "X-1", 10_000, TODAY)
    with pytest.raises(NotFound):
        await start(other, debtor_ids=[mine.debtor])
    assert await CheckoutSession.count().where(CheckoutSession.account == other.id) == 0

    started, _ = await start(other)
    with pytest.raises(NotFound):
        await checkout.checkout_view([mine.debtor], started.public_id)
    with pytest.raises(NotFound):
        await checkout.checkout_view([mine.debtor], "not-a-uuid")
    with pytest.raises(NotFound):
        await checkout.checkout_view([other.debtor], str(uuid.uuid4()))
    view = await checkout.checkout_view([other.debtor], started.public_id, now=NOW)
    assert (view.state, view.amount.minor, view.final) == ("waiting", 10_000, False)


# ---------------------------------------------------------------------------- options and state


async def test_pay_options_list_open_invoices_reference_and_pending_payments(db):
    account = await make_account("MXN")
    late = await make_invoice(account, "MX-1", 45_000, TODAY - dt.timedelta(days=1))
    soon = await make_invoice(account, "MX-2", 5_050, TODAY)
    started, _ = await start(account)
    await CheckoutSession.update({CheckoutSession.status: "pending"}).where(
        CheckoutSession.public_id == uuid.UUID(started.public_id)
    )
    options = await checkout.pay_options([account.debtor], today=TODAY)
    [option] = options.accounts
    assert option.balance.minor == 50_050
    assert [(i.id, i.open.minor, i.overdue) for i in option.invoices] == [
        (late.id, 45_000, True),
        (soon.id, 5_050, False),
    ]
    assert option.transfer_reference == payment_reference(account.id)
    assert [p.public_id for p in option.pending] == [started.public_id]
    assert option.decimals == 2 and option.payable


async def test_state_follows_the_checkout_and_its_payment(db):
    account = await make_account("ARS")
    await make_invoice(account, "ST-1", 10_000, TODAY)
    started, _ = await start(account)
    row = await row_of(started)
    ids = [account.debtor]
    assert (await checkout.checkout_view(ids, started.public_id, now=NOW)).state == "waiting"
    later = NOW + checkout.CHECKOUT_LIFETIME + dt.timedelta(seconds=1)
    expired = await checkout.checkout_view(ids, started.public_id, now=later)
    assert (expired.state, expired.final) == ("expired", True)

    await Payment.insert(
        Payment(
            account=account.id,
            provider="simulated",
            provider_payment_id=f"st-{row.id}",
            amount=10_000,
            currency="ARS",
            status="in_process",
            method="bank_transfer",
            checkout=row.id,
        )
    )
    pending = await checkout.checkout_view(ids, started.public_id, now=later)
    assert (pending.state, pending.final, pending.payment_method) == (
        "pending",
        False,
        "bank_transfer",
    )
    await CheckoutSession.update({CheckoutSession.status: "approved"}).where(
        CheckoutSession.id == row.id
    )
    approved = await checkout.checkout_view(ids, started.public_id, now=later)
    assert (approved.state, approved.final) == ("approved", True)


# ---------------------------------------------------------------------------- demo mode


async def test_simulating_an_outcome_creates_the_payment_and_queues_its_sync(db, redis, queue):
    account = await make_account("ARS")
    await make_invoice(account, "D-1", 33_333, TODAY)
    provider = SimulatedProvider()
    started, _ = await start(account, provider=provider)
    result = await checkout.simulate_outcome(
        debtor_ids=[account.debtor],
        public_id=started.public_id,
        outcome="pending",
        provider=provider,
        queue=queue,
        now=NOW,
    )
    payment = await SimulatedPayment.objects().get(SimulatedPayment.id == int(result.payment_id))
    assert (payment.status, payment.amount, payment.method) == ("pending", 33_333, "ticket")
    queued = queue_name(db.redis_prefix)
    job = f"{db.redis_prefix}{checkout.sync_job_id('simulated', result.payment_id)}"
    assert await redis.zscore(queued, job) is not None

    # the worker saw it pending; the voucher then gets paid
    await CheckoutSession.update({CheckoutSession.status: "pending"}).where(
        CheckoutSession.public_id == uuid.UUID(started.public_id)
    )
    with pytest.raises(Conflict):
        await checkout.simulate_outcome(
            debtor_ids=[account.debtor],
            public_id=started.public_id,
            outcome="rejected",
            provider=provider,
            queue=queue,
            now=NOW,
        )
    paid = await checkout.simulate_outcome(
        debtor_ids=[account.debtor],
        public_id=started.public_id,
        outcome="approved",
        provider=provider,
        queue=queue,
        now=NOW,
    )
    assert paid.payment_id == result.payment_id
    payment = await SimulatedPayment.objects().get(SimulatedPayment.id == int(result.payment_id))
    assert payment.status == "approved"
    assert await redis.zscore(queued, f"{job}:paid") is not None

    await CheckoutSession.update({CheckoutSession.status: "approved"}).where(
        CheckoutSession.public_id == uuid.UUID(started.public_id)
    )
    with pytest.raises(Conflict):
        await checkout.simulate_outcome(
            debtor_ids=[account.debtor],
            public_id=started.public_id,
            outcome="approved",
            provider=provider,
            queue=queue,
            now=NOW,
        )
    assert (
        await SimulatedPayment.count().where(
            SimulatedPayment.checkout == (await row_of(started)).id
        )
        == 1
    )


async def test_the_demo_page_exists_only_for_the_simulated_provider(db, queue):
    account = await make_account("ARS")
    await make_invoice(account, "R-1", 1_000, TODAY)
    started, _ = await start(account)

    class RealProvider(SimulatedProvider):
        name = "mercadopago"
        simulated = False

    with pytest.raises(NotFound):
        await checkout.simulated_checkout(
            [account.debtor], started.public_id, provider=RealProvider()
        )
    with pytest.raises(NotFound):
        await checkout.simulate_outcome(
            debtor_ids=[account.debtor],
            public_id=started.public_id,
            outcome="approved",
            provider=RealProvider(),
            queue=queue,
        )
