//! Protocol tests in virtual time (see [`super::sim`]).

mod datagrams;
mod transfer;
