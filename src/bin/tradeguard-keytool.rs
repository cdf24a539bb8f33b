//! `tradeguard-keytool`: root key management, file encryption and
//! break-glass recovery of single values, outside the database.
//!
//! It includes the pure-Rust crypto core by path and never links pgrx or
//! PostgreSQL. Exit codes: 0 success, 1 failure (including a fingerprint
//! mismatch for `check`), 2 usage error. Errors go to standard error; key
//! bytes are never printed.

#[path = "../crypto/core.rs"]
mod crypto;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use crypto::envelope::{self, DataKey};
use crypto::error::CryptoError;
use crypto::filefmt;
use crypto::rootkey::{self, RootKey};
use crypto::value::TypedValue;

const USAGE: &str = "\
tradeguard-keytool - root key and offline tools for the tradeguard PostgreSQL extension

USAGE
  tradeguard-keytool generate <key-path> [--force]
      Create a new root key file: 32 random bytes as 64 hex characters and a
      newline, mode 0600. Refuses to overwrite an existing file unless --force
      (replacing a root key in use makes every wrapped data key, and so every
      encrypted value, unreadable: keep a backup of the old one).
      Prints the new key's fingerprint on standard output.

  tradeguard-keytool fingerprint <key-path>
      Print the fingerprint (tgk1:...) of a root key file. The fingerprint
      identifies the key without revealing it.

  tradeguard-keytool check <key-path> <expected-fingerprint>
      Exit 0 if the key file's fingerprint is the expected one, 1 otherwise.

  tradeguard-keytool encrypt-file <key-path> <in> <out> [--force]
  tradeguard-keytool decrypt-file <key-path> <in> <out> [--force]
      Encrypt or decrypt a whole file (configuration file, backup) with a key
      derived from the root key. <in> or <out> may be '-' for standard input
      or output. <out> is created with mode 0600 and never overwritten unless
      --force. Files are processed in memory; the limit is 1 GiB.

  tradeguard-keytool decrypt-value <key-path> --key-name NAME --key-version N
                     --wrapped HEX [--purpose encrypt]
                     [--context TEXT | --context-hex HEX] [--raw] <value>
      Break-glass recovery of one encrypted value without the database.
      --key-name, --key-version and --wrapped come from the database's key
      table (the wrapped data key as hex, with or without a leading \\x);
      --context is the context the value was encrypted with (default: empty).
      <value> is the armored text form (tg1:...), the bytea form (\\x...), or
      '-' to read it from standard input. The plaintext is printed on standard
      output in PostgreSQL's text form (bytea as \\x hex, timestamptz in UTC);
      --raw writes the plaintext bytes exactly, without a newline.

  tradeguard-keytool help
      Show this text.

The root key file must be a regular file owned by the user running the tool
(the PostgreSQL server's user for the server's key) with mode 0600 or 0400,
holding 32 bytes as 64 hex characters or as base64.

EXIT STATUS
  0 success, 1 failure or fingerprint mismatch, 2 usage error.
";

#[derive(Debug)]
enum Fail {
    /// Bad command line: exit 2.
    Usage(String),
    /// The operation failed: exit 1.
    Op(String),
}

impl From<CryptoError> for Fail {
    fn from(e: CryptoError) -> Fail {
        Fail::Op(e.to_string())
    }
}

fn usage<T>(m: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Usage(m.into()))
}

/// Parsed command line of one command: positionals and `--options`.
#[derive(Debug, Default)]
struct Args {
    positional: Vec<OsString>,
    options: Vec<(String, Option<String>)>,
}

impl Args {
    /// `flags` take no value, `valued` take the next argument (or `--opt=value`).
    fn parse(args: &[OsString], flags: &[&str], valued: &[&str]) -> Result<Args, Fail> {
        let mut out = Args::default();
        let mut it = args.iter();
        let mut only_positional = false;
        while let Some(a) = it.next() {
            let s = a.to_str();
            match s {
                Some("--") if !only_positional => only_positional = true,
                Some(s) if !only_positional && s.starts_with("--") => {
                    let (name, inline) = match s.split_once('=') {
                        Some((n, v)) => (n, Some(v.to_string())),
                        None => (s, None),
                    };
                    if out.options.iter().any(|(n, _)| n == name) {
                        return usage(format!("option {name} given twice"));
                    }
                    if flags.contains(&name) {
                        if inline.is_some() {
                            return usage(format!("option {name} takes no value"));
                        }
                        out.options.push((name.to_string(), None));
                    } else if valued.contains(&name) {
                        let v = match inline {
                            Some(v) => v,
                            None => match it.next().map(|v| v.to_str()) {
                                Some(Some(v)) => v.to_string(),
                                Some(None) => {
                                    return usage(format!("value of {name} is not valid UTF-8"))
                                }
                                None => return usage(format!("option {name} needs a value")),
                            },
                        };
                        out.options.push((name.to_string(), Some(v)));
                    } else {
                        return usage(format!("unknown option {name}"));
                    }
                }
                _ => out.positional.push(a.clone()),
            }
        }
        Ok(out)
    }

    fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| n == name)
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    fn required(&self, name: &str) -> Result<&str, Fail> {
        self.value(name)
            .ok_or_else(|| Fail::Usage(format!("missing required option {name}")))
    }

    fn positionals(&self, names: &[&str]) -> Result<Vec<PathBuf>, Fail> {
        if self.positional.len() != names.len() {
            return usage(format!(
                "expected {} argument{} ({}), got {}",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(" "),
                self.positional.len()
            ));
        }
        Ok(self.positional.iter().map(PathBuf::from).collect())
    }
}

/// Hex with an optional `\x` (bytea output) or `0x` prefix; whitespace ignored.
fn parse_hex(what: &str, s: &str) -> Result<Vec<u8>, Fail> {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let t = t
        .strip_prefix("\\x")
        .or_else(|| t.strip_prefix("0x"))
        .unwrap_or(&t);
    hex::decode(t).map_err(|_| Fail::Usage(format!("{what} is not valid hex")))
}

/// The envelope bytes of `tg1:...` or `\x...`.
fn parse_value(s: &str) -> Result<Vec<u8>, Fail> {
    let s = s.trim();
    if s.starts_with(envelope::ARMOR_PREFIX) {
        Ok(envelope::dearmor(s)?)
    } else if s.starts_with("\\x") {
        parse_hex("the value", s)
    } else {
        usage("the value must be armored text (tg1:...) or bytea hex (\\x...)")
    }
}

fn load_root(path: &Path) -> Result<RootKey, Fail> {
    Ok(RootKey::load(path)?)
}

fn cmd_generate(a: &Args) -> Result<i32, Fail> {
    let p = a.positionals(&["<key-path>"])?;
    let path = &p[0];
    if path == Path::new("-") {
        return usage("generate writes a file; '-' (standard output) is not allowed for a key");
    }
    let key = RootKey::generate()?;
    let mut content = key.to_hex();
    content.push('\n');
    filefmt::write_output_private(path, content.as_bytes(), a.flag("--force"))?;
    eprintln!(
        "wrote a new root key to {} (mode 0600); keep a backup of it in a safe place: \
         values encrypted under it cannot be recovered without it",
        path.display()
    );
    println!("{}", key.fingerprint());
    Ok(0)
}

fn cmd_fingerprint(a: &Args) -> Result<i32, Fail> {
    let p = a.positionals(&["<key-path>"])?;
    println!("{}", load_root(&p[0])?.fingerprint());
    Ok(0)
}

fn cmd_check(a: &Args) -> Result<i32, Fail> {
    let p = a.positionals(&["<key-path>", "<expected-fingerprint>"])?;
    let expected = p[1].to_string_lossy().to_string();
    let fp = load_root(&p[0])?.fingerprint();
    if rootkey::fingerprints_match(&fp, &expected) {
        println!("ok: {} has fingerprint {fp}", p[0].display());
        Ok(0)
    } else {
        eprintln!(
            "tradeguard-keytool: fingerprint mismatch: {} has {fp}, expected {}",
            p[0].display(),
            expected.trim()
        );
        Ok(1)
    }
}

fn cmd_file(a: &Args, encrypt: bool) -> Result<i32, Fail> {
    let p = a.positionals(&["<key-path>", "<in>", "<out>"])?;
    let root = load_root(&p[0])?;
    let limit = if encrypt {
        filefmt::MAX_FILE_LEN
    } else {
        filefmt::MAX_ENCRYPTED_FILE_LEN
    };
    let input = filefmt::read_input(&p[1], limit)?;
    if encrypt {
        if filefmt::is_encrypted_file(&input) {
            eprintln!(
                "tradeguard-keytool: warning: {} is already a tradeguard encrypted file",
                p[1].display()
            );
        }
        let out = filefmt::encrypt_bytes(&root, &input)?;
        filefmt::write_output_private(&p[2], &out, a.flag("--force"))?;
    } else {
        let out = filefmt::decrypt_bytes(&root, &input)?;
        filefmt::write_output_private(&p[2], &out, a.flag("--force"))?;
    }
    Ok(0)
}

fn cmd_decrypt_value(a: &Args) -> Result<i32, Fail> {
    let p = a.positionals(&["<key-path>", "<value>"])?;
    let name = a.required("--key-name")?;
    let version: u32 = a
        .required("--key-version")?
        .trim()
        .parse()
        .map_err(|_| Fail::Usage("--key-version must be a non-negative integer".into()))?;
    let purpose = a.value("--purpose").unwrap_or("encrypt");
    let wrapped = parse_hex("--wrapped", a.required("--wrapped")?)?;
    let context: Vec<u8> = match (a.value("--context"), a.value("--context-hex")) {
        (Some(_), Some(_)) => return usage("give --context or --context-hex, not both"),
        (Some(c), None) => c.as_bytes().to_vec(),
        (None, Some(h)) => parse_hex("--context-hex", h)?,
        (None, None) => Vec::new(),
    };
    let value_arg = if p[1] == Path::new("-") {
        let buf = filefmt::read_input(Path::new("-"), 2 << 30)?;
        String::from_utf8(buf.to_vec())
            .map_err(|_| Fail::Usage("the value on standard input is not text".into()))?
    } else {
        p[1].to_str()
            .ok_or_else(|| Fail::Usage("the value is not valid UTF-8".into()))?
            .to_string()
    };
    let env = parse_value(&value_arg)?;
    let header = envelope::parse_header(&env)?;
    if header.key_version != version {
        return Err(Fail::Op(format!(
            "the value was encrypted with version {} of key id {}, not version {version}: \
             export the wrapped key of that version",
            header.key_version, header.key_id
        )));
    }
    let root = load_root(&p[0])?;
    let dk = rootkey::unwrap_data_key(&root, name, version, purpose, &wrapped)?;
    let key = DataKey::from_bytes(&dk);
    let plaintext = envelope::open(&key, &env, &context)?;
    let mut out = std::io::stdout().lock();
    let written = if a.flag("--raw") {
        out.write_all(&plaintext)
    } else {
        let v = TypedValue::decode(header.value_type, &plaintext)?;
        let mut s = zeroize::Zeroizing::new(v.to_display());
        s.push('\n');
        out.write_all(s.as_bytes())
    };
    written
        .and_then(|_| out.flush())
        .map_err(|e| Fail::Op(format!("cannot write to standard output: {e}")))?;
    Ok(0)
}

fn run(argv: &[OsString]) -> Result<i32, Fail> {
    let Some(cmd) = argv.first() else {
        return usage("no command given");
    };
    let rest = &argv[1..];
    match cmd.to_str().unwrap_or("") {
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(0)
        }
        "generate" => cmd_generate(&Args::parse(rest, &["--force"], &[])?),
        "fingerprint" => cmd_fingerprint(&Args::parse(rest, &[], &[])?),
        "check" => cmd_check(&Args::parse(rest, &[], &[])?),
        "encrypt-file" => cmd_file(&Args::parse(rest, &["--force"], &[])?, true),
        "decrypt-file" => cmd_file(&Args::parse(rest, &["--force"], &[])?, false),
        "decrypt-value" => cmd_decrypt_value(&Args::parse(
            rest,
            &["--raw"],
            &[
                "--key-name",
                "--key-version",
                "--purpose",
                "--wrapped",
                "--context",
                "--context-hex",
            ],
        )?),
        other => usage(format!("unknown command '{other}'")),
    }
}

fn main() {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let code = match run(&argv) {
        Ok(c) => c,
        Err(Fail::Usage(m)) => {
            eprintln!("tradeguard-keytool: {m}\nRun 'tradeguard-keytool help' for usage.");
            2
        }
        Err(Fail::Op(m)) => {
            eprintln!("tradeguard-keytool: {m}");
            1
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn option_parsing() {
        let a = Args::parse(
            &os(&["k", "--key-name", "n", "--key-version=3", "--raw", "v"]),
            &["--raw"],
            &["--key-name", "--key-version"],
        )
        .unwrap();
        assert_eq!(a.positional, os(&["k", "v"]));
        assert_eq!(a.value("--key-name"), Some("n"));
        assert_eq!(a.value("--key-version"), Some("3"));
        assert!(a.flag("--raw"));
        assert!(matches!(
            Args::parse(&os(&["--nope"]), &[], &[]),
            Err(Fail::Usage(_))
        ));
        assert!(matches!(
            Args::parse(&os(&["--key-name"]), &[], &["--key-name"]),
            Err(Fail::Usage(_))
        ));
        assert!(matches!(
            Args::parse(&os(&["--raw", "--raw"]), &["--raw"], &[]),
            Err(Fail::Usage(_))
        ));
        let a = Args::parse(&os(&["--", "--raw"]), &["--raw"], &[]).unwrap();
        assert_eq!(a.positional, os(&["--raw"]));
        assert!(matches!(run(&os(&["frobnicate"])), Err(Fail::Usage(_))));
        assert!(matches!(run(&[]), Err(Fail::Usage(_))));
    }

    #[test]
    fn value_forms() {
        let env = envelope::seal(
            &DataKey::from_bytes(&[1; 32]),
            1,
            1,
            envelope::ValueType::Text,
            b"x",
            b"",
        );
        assert_eq!(parse_value(&envelope::armor(&env).unwrap()).unwrap(), env);
        assert_eq!(
            parse_value(&format!("\\x{}\n", hex::encode(&env))).unwrap(),
            env
        );
        assert!(parse_value("hello").is_err());
        assert_eq!(parse_hex("w", "\\xAB cd").unwrap(), vec![0xab, 0xcd]);
    }
}
