"""All SQL: one module per table or aggregate, migrations, the embedded PostgreSQL."""
