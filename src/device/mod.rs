//! # device — where reports meet a wire (`DESIGN.md`, "Sans-IO middle": only this layer does I/O)
//!
//! * [`udp`]: `vu2f serve --udp`: CTAPHID over UDP, one report per datagram, replies to the sender.
//! * [`control`]: the control socket in the store directory that `vu2f touch NAME` presses
//!   buttons through.
pub mod control;
pub mod udp;
