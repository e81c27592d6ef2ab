//! The flat-N floor for `scripts/bench`: the least any supervisor has to do to bring N
//! components to "ready". It spawns N copies of one command, each in its own process group with
//! stdout piped (stderr merged into the same pipe, as razar does), reads the first line of each,
//! prints the elapsed time, then SIGKILLs every group and reaps every child.
//!
//! No async runtime, no state, no logs: std plus `nix` for `killpg` and the open-files limit.
//!
//! With `--dag LEVELS WIDTH` it is the floor of a layered DAG instead: WIDTH children per level,
//! each level started once every child of the level before printed its first line (the default
//! command then is `sh -c 'sleep 0.05; echo ready; exec sleep 600'`).
//!
//! ```sh
//! cargo build --release --example floor
//! target/release/examples/floor 1000                       # sh -c 'echo ready; exec sleep 600'
//! target/release/examples/floor 10 sh -c 'echo hi; exec sleep 5'
//! target/release/examples/floor --dag 20 10
//! ```
//!
//! Output (stdout, one line): `floor n=<N> ready_seconds=<s> matched=<k>`; `matched` counts the
//! children whose first line was exactly `ready` (for the default command it must equal N).
//! Exit status 0 when every child printed a first line, 1 otherwise.

use std::io::{BufRead, BufReader, PipeReader};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

fn main() {
    let started = Instant::now();
    let mut args = std::env::args().skip(1).peekable();
    let dag = args.peek().is_some_and(|a| a == "--dag");
    let (levels, width) = if dag {
        args.next();
        (number(args.next(), "LEVELS"), number(args.next(), "WIDTH"))
    } else {
        (1, args.next().map_or(1000, |a| number(Some(a), "N")))
    };
    let n = levels * width;
    let mut argv: Vec<String> = args.collect();
    if argv.is_empty() {
        let script = if dag { "sleep 0.05; echo ready; exec sleep 600" } else { "echo ready; exec sleep 600" };
        argv = vec!["sh".into(), "-c".into(), script.into()];
    }
    raise_open_files_limit();

    let mut children: Vec<Child> = Vec::with_capacity(n);
    let mut matched = 0;
    let mut complete = true;
    let mut readers = Vec::with_capacity(n);
    for level in 0..levels {
        let first = readers.len();
        spawn_level(&argv, width, &mut children, &mut readers);
        // The children run concurrently; reading their first lines in order costs nothing extra.
        let (m, c) = first_lines(&mut readers[first..]);
        matched += m;
        complete &= c;
        if !c {
            eprintln!("floor: a child of level {level} ended without a first line");
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if dag {
        println!("floor levels={levels} width={width} ready_seconds={elapsed:.6} matched={matched}");
    } else {
        println!("floor n={n} ready_seconds={elapsed:.6} matched={matched}");
    }

    kill_all(&mut children);
    drop(readers);
    std::process::exit(if complete { 0 } else { 1 });
}

fn number(arg: Option<String>, what: &str) -> usize {
    match arg.map(|s| s.parse::<usize>()) {
        Some(Ok(n)) if n > 0 => n,
        _ => {
            eprintln!(
                "floor: {what} must be a positive number (usage: floor [N] [CMD…] | floor --dag LEVELS WIDTH [CMD…])"
            );
            std::process::exit(2);
        }
    }
}

/// Spawns `count` copies of `argv`, each leading its own process group, stdout+stderr on one pipe.
fn spawn_level(argv: &[String], count: usize, children: &mut Vec<Child>, readers: &mut Vec<BufReader<PipeReader>>) {
    for i in 0..count {
        // One pipe for stdout and stderr, like razar's output capture.
        let (reader, writer) = match std::io::pipe() {
            Ok(p) => p,
            Err(e) => fail(children, &format!("pipe for child {i}: {e}")),
        };
        let writer2 = match writer.try_clone() {
            Ok(w) => w,
            Err(e) => fail(children, &format!("pipe for child {i}: {e}")),
        };
        let spawned = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::from(OwnedFd::from(writer)))
            .stderr(Stdio::from(OwnedFd::from(writer2)))
            .process_group(0)
            .spawn();
        match spawned {
            Ok(child) => children.push(child),
            Err(e) => fail(children, &format!("cannot spawn child {i} ({:?}): {e}", argv[0])),
        }
        readers.push(BufReader::new(reader));
    }
}

/// Reads the first line of each reader: (how many were exactly `ready`, whether all had one).
fn first_lines(readers: &mut [BufReader<PipeReader>]) -> (usize, bool) {
    let mut matched = 0;
    let mut complete = true;
    let mut line = String::new();
    for r in readers {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => complete = false,
            Ok(_) => {
                if line.trim_end() == "ready" {
                    matched += 1;
                }
            }
        }
    }
    (matched, complete)
}

/// SIGKILLs every child's group and reaps every child.
fn kill_all(children: &mut [Child]) {
    for c in children.iter_mut() {
        let _ = killpg(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
        let _ = c.kill();
    }
    for c in children.iter_mut() {
        let _ = c.wait();
    }
}

fn fail(children: &mut [Child], msg: &str) -> ! {
    eprintln!("floor: {msg}");
    kill_all(children);
    std::process::exit(1);
}

/// A thousand pipes do not fit the usual soft limit of 1024 descriptors.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
