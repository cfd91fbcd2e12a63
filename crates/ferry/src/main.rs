//! The `ferry` binary: parses arguments, runs the command, and turns any error into one
//! line on stderr (`ferry: <message>`) and a non-zero exit code.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    install_panic_hook();
    let cli = match ferry::cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match ferry::run(cli, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        // `ferry inspect x | head`: the reader has all it wanted.
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            let code = err.exit_code();
            report(&err);
            ExitCode::from(code)
        }
    }
}

fn report(err: &ferry::error::Error) {
    let line = ferry::error::one_line(ferry::error::chain(err));
    // Nothing sensible is left to do if stderr itself is gone.
    let _ = writeln!(std::io::stderr(), "ferry: {line}");
}

/// Help and version are not errors; everything else clap rejects is a usage error (2).
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            ExitCode::from(2)
        }
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "ferry: {}",
                ferry::cli::usage_error_line(&err)
            );
            ExitCode::from(2)
        }
    }
}

/// A bug must still end as one line, not a backtrace dump in the middle of a user's log.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string().replace('\n', " ");
        let _ = writeln!(
            std::io::stderr(),
            "ferry: internal error (please report): {message}"
        );
    }));
}
