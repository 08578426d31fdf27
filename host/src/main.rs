//! The `irhost` binary: the command line of [`irhost::cli`].
#![warn(clippy::too_many_lines)]

fn main() -> std::process::ExitCode {
    irhost::cli::main()
}
