//! Several orchestrator instances at once: leadership, hand-back, and chaos (killed instances, a failing Nomad).
//!
//! One test program per area: the modules below share `swath-test-support` (the `support` crate).

mod chaos;
mod ha;
