//! `ferry generate`: the man pages and completion scripts an install step puts in place,
//! checked the way a user meets them: bash completing ferry's real subcommands and flags
//! (the script sourced into a real bash), and a man page per subcommand that names every
//! flag the command line takes.

use crate::support::FERRY;
use std::process::Command;

fn generate(args: &[&str]) -> String {
    let output = Command::new(FERRY)
        .arg("generate")
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// What bash offers after `words` (the last one being completed), by ferry's script.
fn bash_completes(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         _ferry ferry '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len().saturating_sub(2)],
    );
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ferry.bash");
    std::fs::write(&script, generate(&["bash"])).unwrap();
    let offered = bash_completes(&script, &["ferry", "mig"]);
    assert_eq!(offered, ["migrate"], "{offered:?}");
    let offered = bash_completes(&script, &["ferry", "migrate", "--spool"]);
    assert!(
        offered.contains(&"--spool-dir".to_owned())
            && offered.contains(&"--spool-max-mb".to_owned()),
        "{offered:?}"
    );
    let offered = bash_completes(&script, &["ferry", "generate", ""]);
    for what in ["man", "bash", "zsh", "fish"] {
        assert!(offered.contains(&what.to_owned()), "{offered:?}");
    }
}

#[test]
fn every_subcommand_has_a_man_page_naming_each_of_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    generate(&["man", "--dir", dir.path().to_str().unwrap()]);
    let top = std::fs::read_to_string(dir.path().join("ferry.1")).unwrap();
    assert!(top.contains(".TH ferry 1"), "{top}");
    for sub in ferry::cli::command().get_subcommands() {
        let name = sub.get_name();
        let page = dir.path().join(format!("ferry-{name}.1"));
        let text = std::fs::read_to_string(&page)
            .unwrap_or_else(|e| panic!("{}: {e}", page.display()))
            .replace("\\-", "-");
        assert!(top
            .replace("\\-", "-")
            .contains(&format!("ferry-{name}(1)")));
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(
                    text.contains(&format!("--{long}")),
                    "ferry-{name}.1 lacks --{long}"
                );
            }
        }
    }
    // The page on stdout is the top one.
    assert_eq!(generate(&["man"]), top);
}

#[test]
fn zsh_and_fish_scripts_carry_the_same_flags() {
    for shell in ["zsh", "fish"] {
        let script = generate(&[shell]);
        for flag in ["spool-dir", "source-sentinel-password-file", "mode"] {
            assert!(script.contains(flag), "{shell} script lacks {flag}");
        }
    }
}
