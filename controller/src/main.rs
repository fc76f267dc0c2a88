//! The `drover` binary: a thin shell over [`drover::cli`].

fn main() -> std::process::ExitCode {
    drover::cli::main(std::env::args_os().collect())
}
