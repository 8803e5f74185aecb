//! The echo server (`unp_select::echo`) on 127.0.0.1: its behaviour on every loop
//! (`loops`), the RST-before-accept race of UNP 16.6 (`echo_race`), descriptor numbers
//! it did not choose (`server_fds`), what its buffers hold between turns
//! (`server_memory`), and real clients against it (`real_clients`). One module each.

mod echo_race;
mod loops;
mod real_clients;
mod server_fds;
mod server_memory;
