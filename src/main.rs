use std::process::ExitCode;

fn main() -> ExitCode {
    omtd::cli::main()
}
