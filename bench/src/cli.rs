//! What every part's command line shares: the options of a measured run
//! ([`Common`]: `--quick`, `--no-write`, `--rounds`, `--secs`, `--no-perf`,
//! `--no-strace`), the reading of values ([`Parser`]), and the end of a part
//! ([`Common::publish`]: print the markdown, rewrite its blocks of
//! docs/benchmarks.md).

use std::io;
use std::path::Path;
use std::time::Duration;

use crate::invalid;
use crate::kv::client::{Data, Workload};
use crate::orchestrate::Windows;

/// The windows of a full run of the load parts (echo, kv, resp, c10k).
pub const FULL: Windows = Windows {
    ramp: 0.2,
    window: 1.0,
    perf_window: 0.5,
    strace_window: 0.5,
};

/// The windows of their `--quick` runs.
pub const QUICK: Windows = Windows {
    ramp: 0.05,
    window: 0.2,
    perf_window: 0.1,
    strace_window: 0.2,
};

/// The options every part takes.
pub struct Common {
    /// The part's name on the command line ("" for the echo comparison).
    pub part: &'static str,
    pub quick: bool,
    pub write_docs: bool,
    pub rounds: usize,
    pub windows: Windows,
    quick_windows: Windows,
    pub perf: bool,
    pub strace: bool,
    /// Repeats of disturbed runs allowed in the whole part.
    pub retry_budget: usize,
    pub args: Vec<String>,
}

impl Common {
    /// A full run's defaults: `rounds` rounds, the windows `full` (`quick` with
    /// `--quick`), at most `retry_budget` repeats.
    pub fn new(
        part: &'static str,
        args: &[String],
        rounds: usize,
        retry_budget: usize,
        full: Windows,
        quick: Windows,
    ) -> Common {
        Common {
            part,
            quick: false,
            write_docs: true,
            rounds,
            windows: full,
            quick_windows: quick,
            perf: true,
            strace: true,
            retry_budget,
            args: args.to_vec(),
        }
    }

    /// Takes `a` if it is an option of every part; says whether it was.
    fn take(&mut self, a: &str, p: &mut Parser<'_>) -> io::Result<bool> {
        match a {
            "--quick" => {
                self.quick = true;
                self.write_docs = false;
                self.rounds = 1;
                self.windows = self.quick_windows;
                self.retry_budget = 0;
            }
            "--no-write" => self.write_docs = false,
            "--rounds" => self.rounds = p.number(a)?.max(1),
            "--secs" => self.windows.window = p.secs(a)?,
            "--no-perf" => self.perf = false,
            "--no-strace" => self.strace = false,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Parses `args`: the options of every part into `self`, the part's own
    /// through `own`, which says whether it knew the option. `--quick` reaches
    /// `own` too, after `self` took it, for the part's smaller sizes.
    pub fn parse(
        &mut self,
        usage: &'static str,
        mut own: impl FnMut(&str, &mut Parser<'_>) -> io::Result<bool>,
    ) -> io::Result<()> {
        let args = self.args.clone();
        let mut p = Parser { it: args.iter() };
        while let Some(a) = p.it.next() {
            let common = self.take(a, &mut p)?;
            let mine = (!common || a == "--quick") && own(a, &mut p)?;
            if !common && !mine {
                return Err(invalid(format!("unknown option {a}\n\n{usage}")));
            }
        }
        Ok(())
    }

    /// The command line that reproduces this run.
    pub fn command(&self) -> String {
        let mut c = "cargo run --release --manifest-path bench/Cargo.toml".to_string();
        let words: Vec<&str> = std::iter::once(self.part)
            .filter(|p| !p.is_empty())
            .chain(self.args.iter().map(String::as_str))
            .collect();
        if !words.is_empty() {
            c.push_str(" -- ");
            c.push_str(&words.join(" "));
        }
        c
    }

    /// "N round(s) per cell; per run … s ramp, … s measured, then … s of perf
    /// stat; strace windows … s".
    pub fn summary(&self) -> String {
        let w = &self.windows;
        format!(
            "{} round(s) per cell; per run {:.2} s ramp, {:.2} s measured, then {:.2} s of perf stat; strace windows {:.2} s",
            self.rounds, w.ramp, w.window, w.perf_window, w.strace_window
        )
    }

    /// Prints `md`; unless `--no-write`/`--quick`, replaces the named `blocks`
    /// of docs/benchmarks.md; says how long the part took.
    pub fn publish(
        &self,
        md: &str,
        docs_dir: &Path,
        blocks: &[(&str, &str)],
        elapsed: Duration,
    ) -> io::Result<()> {
        println!("{md}");
        let me = match self.part {
            "" => "echo-bench".to_string(),
            p => format!("echo-bench {p}"),
        };
        if self.write_docs && !blocks.is_empty() {
            std::fs::create_dir_all(docs_dir)?;
            let path = docs_dir.join("benchmarks.md");
            let mut doc = std::fs::read_to_string(&path)
                .unwrap_or_else(|_| crate::micro::DOC_SKELETON.into());
            for (name, text) in blocks {
                doc = crate::micro::replace_block(&doc, name, text);
            }
            std::fs::write(&path, doc)?;
            let names: Vec<&str> = blocks.iter().map(|b| b.0).collect();
            eprintln!(
                "{me}: wrote the {} block(s) of docs/benchmarks.md",
                names.join(", ")
            );
        }
        eprintln!("{me}: done in {:.0} s", elapsed.as_secs_f64());
        Ok(())
    }
}

/// A kind's `from_name`: the value a command-line name stands for.
type FromName<T> = fn(&str) -> Option<T>;

/// What a `profile` command (echo, kv) asks for: a server (`--server`), a shape of
/// load (`--mode` or `--workload`), `--depth` (default 8) and `--conns` (50), and
/// how long `perf record` runs (`--secs`, default 2).
pub struct Profile<K, L> {
    pub kind: K,
    pub load: L,
    pub depth: usize,
    pub conns: usize,
    pub secs: f64,
}

impl<K, L> Profile<K, L> {
    /// Parses `args` over the defaults `server.0` and `load.1`; `load.0` is the
    /// option that names the load.
    pub fn parse(
        args: &[String],
        usage: &'static str,
        server: (K, FromName<K>),
        load: (&str, L, FromName<L>),
    ) -> io::Result<Self> {
        let (mut kind, mut what, mut depth, mut conns) = (server.0, load.1, 8, 50);
        let w = Windows {
            window: 2.0,
            ..FULL
        };
        let mut c = Common::new("profile", args, 1, 0, w, w);
        c.parse(usage, |a, p| {
            match a {
                "--server" => kind = p.names(a, server.1)?.remove(0),
                _ if a == load.0 => what = p.names(a, load.2)?.remove(0),
                "--depth" => depth = p.number(a)?.max(1),
                "--conns" => conns = p.number(a)?.max(1),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(Profile {
            kind,
            load: what,
            depth,
            conns,
            secs: c.windows.window,
        })
    }

    /// Prints what `perf record` saw (`text`, from `orchestrate::profile_load`)
    /// under a line of the run: `count` `unit`s and the CPU per `unit`.
    pub fn print(
        &self,
        server: &str,
        load: &str,
        unit: &str,
        (text, count, cpu): (String, u64, f64),
    ) {
        let (depth, conns, secs) = (self.depth, self.conns, self.secs);
        println!(
            "{server} {load} depth {depth} × {conns} connections, {secs} s under perf record -g: {count} {unit}s, {:.2} µs CPU/{unit}\n{text}",
            cpu * 1e6 / count.max(1) as f64
        );
    }
}

/// The options of a request/reply load (kv, resp): `--conns`, `--depths`,
/// `--workloads`, `--keys`, `--value`.
pub struct Requests {
    pub conns: Vec<usize>,
    pub depths: Vec<usize>,
    pub workloads: Vec<Workload>,
    pub data: Data,
}

impl Requests {
    /// Takes `a` if it is one of these options; says whether it was.
    fn take(&mut self, a: &str, p: &mut Parser<'_>) -> io::Result<bool> {
        match a {
            "--conns" => self.conns = p.list(a)?,
            "--depths" => self.depths = p.list(a)?,
            "--workloads" => self.workloads = p.names(a, Workload::from_name)?,
            "--keys" => self.data.keys = p.number(a)?.max(1) as u64,
            "--value" => self.data.value = p.number(a)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Parses `c`'s arguments: the options of every part into `c`, these into
    /// `self`, the part's own through `own` (which also sees `--quick`, and gets
    /// `self` for the smaller sizes); then [`check`](Self::check)s.
    pub fn parse(
        &mut self,
        c: &mut Common,
        usage: &'static str,
        mut own: impl FnMut(&str, &mut Parser<'_>, &mut Requests) -> io::Result<bool>,
    ) -> io::Result<()> {
        c.parse(usage, |a, p| Ok(own(a, p, self)? || self.take(a, p)?))?;
        self.check()
    }

    /// At least one request in flight on at least one connection.
    fn check(&self) -> io::Result<()> {
        if self.depths.contains(&0) || self.conns.contains(&0) {
            return Err(invalid("--depths, --conns: at least 1"));
        }
        Ok(())
    }
}

/// Whether `args` ask for the usage (`-h`, `--help`); prints it if so.
pub fn help(args: &[String], usage: &str) -> bool {
    let asked = args.iter().any(|a| a == "-h" || a == "--help");
    if asked {
        println!("{usage}");
    }
    asked
}

/// The values of a command line, read option by option.
pub struct Parser<'a> {
    it: std::slice::Iter<'a, String>,
}

impl<'a> Parser<'a> {
    /// The value after option `flag`.
    pub fn value(&mut self, flag: &str) -> io::Result<&'a str> {
        self.it
            .next()
            .map(String::as_str)
            .ok_or_else(|| invalid(format!("{flag} needs a value")))
    }

    /// `A,B,..`: numbers.
    pub fn list(&mut self, flag: &str) -> io::Result<Vec<usize>> {
        self.value(flag)?
            .split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .map_err(|_| invalid(format!("{flag}: bad number {x}")))
            })
            .collect()
    }

    /// One number (the first of a list).
    pub fn number(&mut self, flag: &str) -> io::Result<usize> {
        Ok(self.list(flag)?[0])
    }

    /// A positive number of seconds (fractions allowed).
    pub fn secs(&mut self, flag: &str) -> io::Result<f64> {
        self.value(flag)?
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0 && s.is_finite())
            .ok_or_else(|| invalid(format!("{flag}: a number of seconds above 0")))
    }

    /// `A,B,..`: names that `from_name` knows.
    pub fn names<T>(
        &mut self,
        flag: &str,
        from_name: impl Fn(&str) -> Option<T>,
    ) -> io::Result<Vec<T>> {
        self.value(flag)?
            .split(',')
            .map(|s| from_name(s).ok_or_else(|| invalid(format!("{flag}: {s}?"))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn common_and_own_options() {
        let mut c = Common::new(
            "kv",
            &args("--quick --conns 3,4 --rounds 2"),
            5,
            40,
            FULL,
            QUICK,
        );
        let mut conns = vec![1];
        let mut quick_seen = false;
        c.parse("usage", |a, p| {
            match a {
                "--quick" => quick_seen = true,
                "--conns" => conns = p.list(a)?,
                _ => return Ok(false),
            }
            Ok(true)
        })
        .unwrap();
        assert!(c.quick && quick_seen && !c.write_docs);
        assert_eq!((conns, c.rounds, c.windows.window), (vec![3, 4], 2, 0.2));
        assert_eq!(
            c.command(),
            "cargo run --release --manifest-path bench/Cargo.toml -- kv --quick --conns 3,4 --rounds 2"
        );
        let mut c = Common::new("", &args("--bogus"), 3, 0, FULL, QUICK);
        assert!(c.parse("usage", |_, _| Ok(false)).is_err());
        assert_eq!(
            Common::new("", &[], 3, 0, FULL, QUICK).command(),
            "cargo run --release --manifest-path bench/Cargo.toml"
        );
    }
}
