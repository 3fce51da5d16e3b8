//! `sluice-verify EXPORT [--public-key KEY] [--since NOTE] [--witness-key KEY ...] [--min-witnesses N]`:
//! verifies a Sluice audit export offline. Exit 0 when everything verifies, 1 when it does not, 2 when the
//! input cannot be read. Keys are text or files holding them; `--since` is a file holding an older
//! checkpoint note.

use std::process::ExitCode;

use sluice_audit::offline::{Check, CheckError, check_file, key_text};

const USAGE: &str = "usage: sluice-verify EXPORT [--public-key KEY] [--since NOTE_FILE] \
                     [--witness-key KEY ...] [--min-witnesses N]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e @ CheckError::Failed(_)) => {
            println!("{e}");
            ExitCode::from(1)
        }
        Err(CheckError::Input(e)) => {
            eprintln!("sluice-verify: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<Vec<String>, CheckError> {
    let input = |e: String| CheckError::Input(e);
    let mut file = None;
    let mut check = Check::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| input(format!("{name} needs a value\n{USAGE}")))
        };
        match arg.as_str() {
            "--public-key" => check.public_key = Some(read_key(value("--public-key")?)?),
            "--witness-key" => check.witness_keys.push(read_key(value("--witness-key")?)?),
            "--since" => {
                let path = value("--since")?;
                let note = std::fs::read_to_string(&path)
                    .map_err(|e| input(format!("reading {path}: {e}")))?;
                check.since = Some(note);
            }
            "--min-witnesses" => {
                let n = value("--min-witnesses")?;
                let n = n
                    .parse()
                    .map_err(|_| input(format!("--min-witnesses takes a count, not `{n}`")))?;
                check.min_witnesses = Some(n);
            }
            "-h" | "--help" => return Err(input(USAGE.to_owned())),
            flag if flag.starts_with("--") => {
                return Err(input(format!("unknown option `{flag}`\n{USAGE}")));
            }
            _ if file.is_none() => file = Some(arg),
            _ => return Err(input(format!("one export at a time\n{USAGE}"))),
        }
    }
    let file = file.ok_or_else(|| input(USAGE.to_owned()))?;
    check_file(std::path::Path::new(&file), &check)
}

fn read_key(k: String) -> Result<String, CheckError> {
    key_text(k.clone()).map_err(|e| CheckError::Input(format!("reading the key {k}: {e}")))
}
