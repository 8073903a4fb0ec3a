//! Process end-to-end tests (see e2e/README.md).
