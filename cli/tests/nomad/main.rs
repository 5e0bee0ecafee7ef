//! Nomad: the emulator against Nomad's behaviour, the Nomad executor, the generated job files, placement and outcomes.
//!
//! One test program per area: the modules below share `swath-test-support` (the `support` crate).

mod nomad_emulator;
mod nomad_executor;
mod nomad_files;
mod nomad_outcomes;
mod nomad_placement;
