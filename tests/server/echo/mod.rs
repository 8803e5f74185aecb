//! The echo server (`unp_select::echo`) on 127.0.0.1: its behaviour on every loop
//! (`echo`), the RST-before-accept race of UNP 16.6 (`echo_race`), descriptor numbers
//! it did not choose (`server_fds`), what its buffers hold between turns
//! (`server_memory`), and real clients against it (`real_clients`). One module each,
//! in one binary: its tests are threads of one process. The allocator counts for the
//! threads that ask only (`common::alloc`); a test that fills the descriptor table
//! runs in a process of its own (`common::fresh`).

mod echo;
mod echo_race;
mod real_clients;
mod server_fds;
mod server_memory;

