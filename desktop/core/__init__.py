"""Pure domain logic: no Qt, no inference library. Safe to import from any thread or process."""
