//! The `razar` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    razar::run(std::env::args_os())
}
