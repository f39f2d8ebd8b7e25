//! WASI 0.2 (`wasi:*@0.2.x`): the bindings and the glue that is 0.2's alone (its resource
//! types, pollables and `start-*`/`finish-*` socket steps), over the host core the crate's
//! top-level modules hold (`io` streams, `sockets` state machines and policy, `filesystem`
//! operations and sandbox, `cli` stdio sources, `clocks`, `random`, `sys`).
//!
//! [`crate::p3`] is the other ABI over the same core.

pub mod bindings;
mod cli;
mod clocks;
pub(crate) mod io;
mod random;
mod sockets;
