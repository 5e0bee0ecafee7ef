//! Catalogues: where product listings come from.

pub mod local;
