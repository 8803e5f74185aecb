//! The example programs, built before a test runs them: a test never relies on an
//! earlier command having built them, nor runs a stale binary.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// Names already built by this test process.
static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Builds example `name` with the test's own profile (`cargo build --example`,
/// which does nothing if it is up to date) and returns a command that runs it.
pub fn example(name: &str) -> Command {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "--example", name])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo to build the example");
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_string());
    }
    Command::new(path(name))
}

/// `target/<profile>/examples/<name>`, next to the test binary's `deps/`.
fn path(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("the test binary's path");
    dir.pop(); // the test binary
    dir.pop(); // deps/
    dir.join("examples").join(name)
}
