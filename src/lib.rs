//! End-to-end tests of the dbcreds Lambda binaries live in `tests/`; this crate has no code.
