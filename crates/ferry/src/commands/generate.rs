//! `ferry generate man|bash|zsh|fish`: the man page and the completion scripts, made from
//! the command line's definition ([`crate::cli::command`]) by clap's own generators, so
//! they can never disagree with the flags ferry takes.

use crate::cli::{GenerateArgs, Generated};
use crate::error::Error;
use clap_complete::Shell;
use std::io::Write;

pub fn run(args: GenerateArgs, out: &mut dyn Write) -> Result<(), Error> {
    let mut command = crate::cli::command();
    if args.dir.is_some() && args.what != Generated::Man {
        return Err(Error::Usage(
            "--dir writes man pages: use it with `ferry generate man`".into(),
        ));
    }
    let shell = match args.what {
        Generated::Man => {
            // `ferry help X` is `ferry X --help`: no page of its own to list.
            let command = command.disable_help_subcommand(true);
            return match &args.dir {
                // The top page names one page per subcommand: here they all are.
                Some(dir) => write_pages(&command, dir).map_err(|e| {
                    Error::Usage(format!(
                        "--dir {}: cannot write the pages: {e}",
                        dir.display()
                    ))
                }),
                None => clap_mangen::Man::new(command)
                    .render(out)
                    .map_err(Error::Stdout),
            };
        }
        Generated::Bash => Shell::Bash,
        Generated::Zsh => Shell::Zsh,
        Generated::Fish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut command, "ferry", out);
    Ok(())
}

/// `ferry.1`, the page `ferry generate man` prints, and `ferry-<subcommand>.1` for each
/// subcommand it lists.
fn write_pages(command: &clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let write = |name: &str, command: clap::Command| -> std::io::Result<()> {
        let mut file = std::fs::File::create(dir.join(format!("{name}.1")))?;
        clap_mangen::Man::new(command).render(&mut file)?;
        file.sync_all()
    };
    write("ferry", command.clone())?;
    for sub in command.get_subcommands() {
        let name = format!("ferry-{}", sub.get_name());
        write(&name, sub.clone().name(name.clone()))?;
    }
    Ok(())
}
