//! The floor for `cbreak run`'s open (skip) path: a Rust binary that exits
//! at once.

fn main() {}
