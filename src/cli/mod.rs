//! The `nfnet` binary's own modules: its arguments ([`args`]) and its commands ([`commands`]).
//! The library never prints; these do the talking.

pub mod args;
pub mod commands;
pub mod ranks;
