//! An emulator of the Nomad HTTP API (`reference/nomad-api.md` §7) for the tests.
