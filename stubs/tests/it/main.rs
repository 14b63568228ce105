//! Integration tests: both stubs as real HTTP servers on port 0, driven with reqwest.

mod access;
mod archives;
mod budget;
mod docex;
mod faults;
mod helpers;
mod restart;
mod tasktracker;
