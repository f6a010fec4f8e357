"""Event payload contracts, one module per producing context.

Producers build these models and consumers parse them, so both sides agree by construction. They
are exported as JSON Schema and an AsyncAPI document by `crm_common.contracts.catalogue`.
"""
