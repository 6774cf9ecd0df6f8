//! See `tests/it/hardening.rs`.
