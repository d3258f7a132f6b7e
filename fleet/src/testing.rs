//! Helpers for integration tests (filled in below).
