"""The model library: every local model Openlid knows (`catalog`) and its records in SQLite
(`store`)."""
