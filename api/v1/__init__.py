"""The integration API `/api/v1`: Bearer API keys with scopes, batch upserts of debtors and
invoices, balances, and payments, plans and disputes since a cursor (see `api.v1.routes`)."""
