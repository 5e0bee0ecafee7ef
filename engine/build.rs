//! Rebuilds the orchestrator when a migration is added or changed: `sqlx::migrate!` embeds `sql/`
//! at compile time, and cargo does not watch that directory on its own.

fn main() {
    println!("cargo:rerun-if-changed=../sql");
}
