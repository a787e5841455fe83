//! `provisor profile ...`: the profile toolkit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use provisor_envelope::openssl_enc::{Digest, DigestChoice, Kdf};
use provisor_envelope::{Encryption, Keys, Limits, WrapSpec, aes128gcm};
use provisor_profile::data_type::Severity;
use provisor_profile::{EmptyTag, EmptyValue, Parameter, ParseOptions, Profile, Value, dictionary, lint};

use crate::files::{display, read_input, write_output};

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Remove every layer (decrypt, gunzip) and print the parameters that take effect.
    ///
    /// With --json the output is one object, in document order, mapping each parameter to
    /// {"value": "...", "ua": "na"|"ro"|"rw"|null}; "value" is null when the element resets the parameter to its
    /// default or only changes attributes. The last occurrence of a name wins, as on the phone.
    Parse {
        /// The profile (XML, gzip, AES-256-CBC or RFC 8188), or - for standard input.
        file: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        read: ReadArgs,
        /// Print JSON instead of NAME = VALUE lines.
        #[arg(long)]
        json: bool,
    },
    /// Check a profile against the parameter dictionary; exit 1 if there are errors.
    ///
    /// Errors: malformed XML, values that do not fit their data type, non-ASCII values. Warnings (the phone
    /// accepts these): unknown names (with a "did you mean"), repeated names, $SA..$SD outside rule options.
    Lint {
        /// The profile, or - for standard input.
        file: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        read: ReadArgs,
        /// Print findings as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite a profile in canonical form: one parameter per line, escaped, comments dropped.
    Fmt {
        /// The profile, or - for standard input.
        file: PathBuf,
        /// Where to write (default: standard output).
        #[arg(short, long, default_value = "-")]
        output: PathBuf,
        /// Do not write; exit 1 if the file is not already in canonical form.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Compare the effective parameters of two profiles; exit 1 if they differ.
    Diff {
        /// The old profile.
        a: PathBuf,
        /// The new profile.
        b: PathBuf,
        /// Keys for both files (each file's layers are detected on its own).
        #[command(flatten)]
        keys: KeyArgs,
        /// The AES-256-CBC key of the second file, when it differs from --key.
        #[arg(long)]
        b_key: Option<String>,
        /// The RFC 8188 IKM of the second file (hex), when it differs from --ikm.
        #[arg(long, value_parser = parse_hex)]
        b_ikm: Option<Hex>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Encrypt a file as a phone expects: `openssl enc -aes-256-cbc -k KEY` format, or RFC 8188 aes128gcm.
    Encrypt {
        /// The input, or - for standard input.
        input: PathBuf,
        /// The output file, or - for standard output.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        encryption: EncryptArgs,
        /// gzip before encrypting (the phone gunzips after decrypting).
        #[arg(long)]
        gzip: bool,
        /// Refuse inputs larger than this many bytes.
        #[arg(long, default_value_t = Limits::default().max_input)]
        max_size: usize,
    },
    /// Decrypt (AES-256-CBC or RFC 8188) and gunzip a file; the output is its plaintext, XML or not.
    Decrypt {
        /// The input, or - for standard input.
        input: PathBuf,
        /// The output file, or - for standard output.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Decrypt, optionally edit, and re-encrypt a profile with the same layers (gzip, cipher, digest).
    ///
    /// Without --set the XML passes through byte for byte; with --set it is rewritten in canonical form.
    Repack {
        /// The input, or - for standard input.
        input: PathBuf,
        /// The output file, or - for standard output.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        /// The new AES-256-CBC key (default: keep the old one). Adds encryption to a plain file.
        #[arg(long)]
        new_key: Option<String>,
        /// The digest for the new key (default: the one the input used, or sha256).
        #[arg(long)]
        new_md: Option<Digest>,
        /// The new RFC 8188 IKM, in hex (default: keep the old one).
        #[arg(long, value_parser = parse_hex)]
        new_ikm: Option<Hex>,
        /// Set a parameter, e.g. --set GPP_A=value or --set "Dial Plan[1]=(xx.)". Enterprise files (.sgn, .enc.sgn):
        /// an element by its path, e.g. --set loadInformation=sip8845_65.14-1-1SR1-1 or
        /// --set "sipProfile/sipLines/line[1]/authPassword=x". Repeatable.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Enterprise files: the signer (certificate and key, PEM) that re-signs the result.
        #[arg(long, value_name = "PEM")]
        signer: Option<PathBuf>,
        /// Enterprise .enc.sgn: the phone's private key (PEM) to decrypt with; the certificate beside it, or
        /// --phone-cert, is what the result is encrypted to again.
        #[arg(long, value_name = "PEM")]
        phone_key: Option<PathBuf>,
        /// Enterprise .enc.sgn: the phone certificate to encrypt to (default: the one in --phone-key's file).
        #[arg(long, value_name = "PEM")]
        phone_cert: Option<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
}

/// `profile repack` of an enterprise `.sgn` or `.enc.sgn` (seed 001: "decrypt, edit the XML, encrypt with the same
/// cipher, re-sign"): the same layers out, the same file name and digest inside.
fn repack_enterprise(
    data: &[u8],
    header: provisor_trust::Header,
    set: &[String],
    signer: Option<&Path>,
    phone_key: Option<&Path>,
    phone_cert: Option<&Path>,
) -> Result<Vec<u8>> {
    use provisor_trust::{Certificate, KeyKind, Signer, certificate, edit, encrypted, signed};
    let signer_path = signer.context("an enterprise file is re-signed: give --signer PEM (its certificate and key)")?;
    let signer = Signer::from_pem(&read_input(signer_path, 1 << 20)?).with_context(|| display(signer_path))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
    let edit_all = |mut xml: Vec<u8>| -> Result<Vec<u8>> {
        for s in set {
            let (path, value) = s.split_once('=').with_context(|| format!("--set {s:?}: expected PATH=VALUE"))?;
            xml = edit::set_element(&xml, path, value).with_context(|| format!("--set {s:?}"))?;
        }
        Ok(xml)
    };
    match &header.encryption {
        None => {
            let content = signed::strip(data)?.to_vec();
            Ok(signed::sign(&edit_all(content)?, &signer, &header.filename, header.digest, now)?)
        }
        Some(_) => {
            let key_path = phone_key.context("an .enc.sgn is decrypted first: give --phone-key PEM")?;
            let key_pem = read_input(key_path, 1 << 20)?;
            let key = match certificate::private_key(&key_pem).with_context(|| display(key_path))? {
                KeyKind::Rsa(k) => k,
                KeyKind::Ec(_) => bail!("{}: an EC key; configs are encrypted to RSA keys", display(key_path)),
            };
            let phone = match phone_cert {
                Some(p) => Certificate::from_pem(&read_input(p, 1 << 20)?).with_context(|| display(p))?,
                None => Certificate::from_pem(&key_pem).with_context(|| {
                    format!("{}: no certificate beside the key; give --phone-cert", display(key_path))
                })?,
            };
            let plain = encrypted::decrypt(data, &key)?;
            let mut random = [0u8; 32];
            getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("random: {e}"))?;
            let r = encrypted::Randomness::from_bytes(random);
            Ok(encrypted::encrypt(&edit_all(plain)?, &signer, &phone, &header.filename, header.digest, now, r)?)
        }
    }
}

/// Secrets for reading a profile.
#[derive(Args)]
pub struct KeyArgs {
    /// The AES-256-CBC pass phrase: the `[--key ...]` of the profile rule, the `-k` of openssl enc.
    #[arg(long, conflicts_with = "key_file")]
    key: Option<String>,
    /// Read the pass phrase from this file (first line), keeping it out of the process list.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The EVP_BytesToKey digest: auto tries sha256 then md5 and checks the result is gzip or XML.
    #[arg(long, default_value = "auto")]
    md: DigestChoice,
    /// The RFC 8188 input keying material (IKM_HTTP_Encrypt_Content), in hex.
    #[arg(long, value_parser = parse_hex)]
    ikm: Option<Hex>,
}

/// Options that say how to read a profile.
#[derive(Args)]
pub struct ReadArgs {
    /// Refuse inputs (and decompressed profiles) larger than this many bytes.
    #[arg(long, default_value_t = Limits::default().max_input)]
    max_size: usize,
    /// What an empty element means: the empty string (guide's examples) or the parameter's default (guide's
    /// "Data Types" note).
    #[arg(long, value_enum, default_value_t = EmptyValueArg::EmptyString)]
    empty_value: EmptyValueArg,
    /// What `<X ua="rw"/>` means: only set the attributes and keep the value, or also set an empty value.
    #[arg(long, value_enum, default_value_t = EmptyTagArg::AttributesOnly)]
    empty_tag: EmptyTagArg,
    /// Accept non-ASCII values (the phone firmware supports ASCII only).
    #[arg(long)]
    allow_non_ascii: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum EmptyValueArg {
    EmptyString,
    Default,
}

#[derive(Clone, Copy, ValueEnum)]
enum EmptyTagArg {
    AttributesOnly,
    EmptyValue,
}

/// The encryption to apply.
#[derive(Args)]
pub struct EncryptArgs {
    /// AES-256-CBC pass phrase (openssl enc -k).
    #[arg(long, conflicts_with_all = ["key_file", "ikm"], required_unless_present_any = ["key_file", "ikm"])]
    key: Option<String>,
    /// Read the pass phrase from this file (first line).
    #[arg(long, value_name = "FILE", conflicts_with = "ikm")]
    key_file: Option<PathBuf>,
    /// EVP_BytesToKey digest: sha256 (OpenSSL 1.1+, the guide's openssl-1.1.1d) or md5 (older firmware).
    #[arg(long, default_value = "sha256")]
    md: Digest,
    /// Derive the key with PBKDF2 (openssl enc -pbkdf2). For tooling only: no phone is documented to read it.
    #[arg(long, conflicts_with = "ikm")]
    pbkdf2: bool,
    /// PBKDF2 iterations.
    #[arg(long, default_value_t = 10000, requires = "pbkdf2")]
    iter: u32,
    /// Write no Salted__ header (openssl enc -nosalt). Phones expect the header.
    #[arg(long, conflicts_with = "ikm")]
    nosalt: bool,
    /// RFC 8188 aes128gcm input keying material, in hex.
    #[arg(long, value_parser = parse_hex)]
    ikm: Option<Hex>,
    /// RFC 8188 record size (at least 18).
    #[arg(long, default_value_t = aes128gcm::DEFAULT_RECORD_SIZE, requires = "ikm")]
    rs: u32,
    /// RFC 8188 key id written in the header.
    #[arg(long, default_value = "", requires = "ikm")]
    keyid: String,
}

/// Bytes given in hex on the command line.
#[derive(Clone)]
pub struct Hex(Vec<u8>);

fn parse_hex(s: &str) -> Result<Hex, String> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected an even number of hex digits".into());
    }
    Ok(Hex((0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect()))
}

fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read key file", path.display()))?;
    Ok(text.lines().next().unwrap_or("").as_bytes().to_vec())
}

impl KeyArgs {
    fn keys(&self) -> Result<Keys> {
        let key = match (&self.key, &self.key_file) {
            (Some(k), _) => Some(k.as_bytes().to_vec()),
            (None, Some(f)) => Some(read_key_file(f)?),
            (None, None) => None,
        };
        Ok(Keys { key, digest: self.md, ikm: self.ikm.clone().map(|h| h.0) })
    }
}

impl ReadArgs {
    fn limits(&self) -> Limits {
        Limits { max_input: self.max_size, max_output: self.max_size }
    }

    fn options(&self) -> ParseOptions {
        ParseOptions {
            empty_value: match self.empty_value {
                EmptyValueArg::EmptyString => EmptyValue::EmptyString,
                EmptyValueArg::Default => EmptyValue::Default,
            },
            empty_tag: match self.empty_tag {
                EmptyTagArg::AttributesOnly => EmptyTag::AttributesOnly,
                EmptyTagArg::EmptyValue => EmptyTag::EmptyValue,
            },
            ascii_only: !self.allow_non_ascii,
        }
    }
}

impl EncryptArgs {
    fn encryption(&self) -> Result<Encryption> {
        if let Some(ikm) = &self.ikm {
            return Ok(Encryption::Aes128Gcm {
                ikm: ikm.0.clone(),
                rs: self.rs,
                keyid: self.keyid.as_bytes().to_vec(),
            });
        }
        let key = match (&self.key, &self.key_file) {
            (Some(k), _) => k.as_bytes().to_vec(),
            (None, Some(f)) => read_key_file(f)?,
            (None, None) => bail!("give --key, --key-file or --ikm"),
        };
        let kdf =
            if self.pbkdf2 { Kdf::Pbkdf2 { digest: self.md, iterations: self.iter } } else { Kdf::BytesToKey(self.md) };
        Ok(Encryption::AesCbc { key, kdf, salted: !self.nosalt })
    }
}

/// Reads a file and removes its layers; errors name the file.
fn unwrap_file(path: &Path, keys: &KeyArgs, read: &ReadArgs) -> Result<provisor_envelope::Unwrapped> {
    let data = read_input(path, read.max_size)?;
    provisor_envelope::unwrap(&data, &keys.keys()?, &read.limits()).with_context(|| display(path))
}

fn parse_file(path: &Path, keys: &KeyArgs, read: &ReadArgs) -> Result<Profile> {
    let unwrapped = unwrap_file(path, keys, read)?;
    Profile::parse(&unwrapped.plaintext, &read.options()).with_context(|| display(path))
}

fn describe(value: &Value) -> String {
    match value {
        Value::Text(t) => format!("{t:?}"),
        Value::Default => "(reset to default)".into(),
        Value::Unchanged => "(value kept)".into(),
    }
}

pub fn run(cmd: ProfileCommand) -> Result<ExitCode> {
    match cmd {
        ProfileCommand::Parse { file, keys, read, json } => {
            let profile = parse_file(&file, &keys, &read)?;
            let mut out = String::new();
            if json {
                let mut map = serde_json::Map::new();
                for p in profile.effective() {
                    let value = p.value.text().map_or(serde_json::Value::Null, |t| t.into());
                    let ua = p.ua.map_or(serde_json::Value::Null, |u| u.as_str().into());
                    map.insert(p.name.to_string(), serde_json::json!({ "value": value, "ua": ua }));
                }
                out = serde_json::to_string_pretty(&serde_json::Value::Object(map))?;
                out.push('\n');
            } else {
                for p in profile.effective() {
                    let ua = p.ua.map(|u| format!("  [ua={u}]")).unwrap_or_default();
                    out += &format!("{} = {}{ua}\n", p.name, describe(&p.value));
                }
            }
            write_output(Path::new("-"), out.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        ProfileCommand::Lint { file, keys, read, json } => {
            let unwrapped = unwrap_file(&file, &keys, &read)?;
            let findings = lint::lint(&unwrapped.plaintext, &read.options());
            let name = display(&file);
            let mut out = String::new();
            if json {
                let items: Vec<serde_json::Value> = findings
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "file": name, "line": d.position.line, "column": d.position.column,
                            "severity": if d.severity == Severity::Error { "error" } else { "warning" },
                            "code": d.code, "parameter": d.parameter, "message": d.message,
                        })
                    })
                    .collect();
                out = serde_json::to_string_pretty(&items)? + "\n";
            } else {
                for d in &findings {
                    out += &format!("{name}:{d}\n");
                }
                let errors = findings.iter().filter(|d| d.severity == Severity::Error).count();
                let warnings = findings.len() - errors;
                eprintln!("{name}: {errors} error(s), {warnings} warning(s)");
            }
            write_output(Path::new("-"), out.as_bytes())?;
            let failed = findings.iter().any(|d| d.severity == Severity::Error);
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        ProfileCommand::Fmt { file, output, check, keys, read } => {
            let unwrapped = unwrap_file(&file, &keys, &read)?;
            let options = read.options();
            let profile = Profile::parse(&unwrapped.plaintext, &options).with_context(|| display(&file))?;
            let formatted = profile.write(&options).with_context(|| display(&file))?;
            if check {
                if formatted.as_bytes() != unwrapped.plaintext.as_slice() {
                    eprintln!("{}: not in canonical form", display(&file));
                    return Ok(ExitCode::FAILURE);
                }
                return Ok(ExitCode::SUCCESS);
            }
            write_output(&output, formatted.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        ProfileCommand::Diff { a, b, keys, b_key, b_ikm, read } => {
            let pa = parse_file(&a, &keys, &read)?;
            let keys_b =
                KeyArgs { key: b_key.or(keys.key), key_file: keys.key_file, md: keys.md, ikm: b_ikm.or(keys.ikm) };
            let pb = parse_file(&b, &keys_b, &read)?;
            let out = diff(&pa, &pb);
            write_output(Path::new("-"), out.as_bytes())?;
            Ok(if out.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ProfileCommand::Encrypt { input, output, encryption, gzip, max_size } => {
            let data = read_input(&input, max_size)?;
            let spec = WrapSpec { gzip, encryption: Some(encryption.encryption()?) };
            let packed = provisor_envelope::wrap(&data, &spec)?;
            write_output(&output, &packed)?;
            Ok(ExitCode::SUCCESS)
        }
        ProfileCommand::Decrypt { input, output, keys, read } => {
            let k = keys.keys()?;
            if k.key.is_none() && k.ikm.is_none() {
                bail!("give --key, --key-file or --ikm");
            }
            // Any plaintext: only `parse` needs XML.
            let data = read_input(&input, read.max_size)?;
            let unwrapped = provisor_envelope::unwrap_plaintext(&data, &keys.keys()?, &read.limits())
                .with_context(|| display(&input))?;
            if !unwrapped.layers.iter().any(|l| !matches!(l, provisor_envelope::Layer::Gzip)) {
                eprintln!("{}: note: the file was not encrypted", display(&input));
            }
            write_output(&output, &unwrapped.plaintext)?;
            Ok(ExitCode::SUCCESS)
        }
        ProfileCommand::Repack {
            input,
            output,
            keys,
            new_key,
            new_md,
            new_ikm,
            set,
            signer,
            phone_key,
            phone_cert,
            read,
        } => {
            let data = read_input(&input, read.max_size)?;
            // Enterprise files start with a signed header (tag 1, length 2).
            if data.starts_with(&[1, 0, 2])
                && let Ok(header) = provisor_trust::Header::parse(&data)
            {
                let form =
                    if header.encryption.is_some() { "re-encrypted to the phone and re-signed" } else { "re-signed" };
                let packed = repack_enterprise(
                    &data,
                    header,
                    &set,
                    signer.as_deref(),
                    phone_key.as_deref(),
                    phone_cert.as_deref(),
                )
                .with_context(|| display(&input))?;
                write_output(&output, &packed)?;
                eprintln!("{}: {form}", display(&output));
                return Ok(ExitCode::SUCCESS);
            }
            let old = keys.keys()?;
            let new = Keys {
                key: new_key.map(String::into_bytes).or_else(|| old.key.clone()),
                digest: old.digest,
                ikm: new_ikm.map(|h| h.0).or_else(|| old.ikm.clone()),
            };
            let options = read.options();
            let edits = set
                .iter()
                .map(|s| {
                    let (n, v) = s.split_once('=').with_context(|| format!("--set {s:?}: expected NAME=VALUE"))?;
                    Ok((dictionary::element_name(n), v.to_string()))
                })
                .collect::<Result<Vec<_>>>()?;
            let (packed, spec) =
                provisor_envelope::repack(&data, &old, &new, new_md, &read.limits(), |text| -> Result<Vec<u8>> {
                    let mut profile = Profile::parse(&text, &options)?;
                    if edits.is_empty() {
                        return Ok(text);
                    }
                    for (name, value) in &edits {
                        set_parameter(&mut profile, name, value);
                    }
                    Ok(profile.write(&options)?.into_bytes())
                })
                .map_err(|e| anyhow::anyhow!("{}: {e}", display(&input)))?;
            write_output(&output, &packed)?;
            let layers = [spec.gzip.then(|| "gzip".to_string()), spec.encryption.as_ref().map(|e| e.to_string())];
            let layers: Vec<String> = layers.into_iter().flatten().collect();
            eprintln!(
                "{}: repacked with {}",
                display(&output),
                if layers.is_empty() { "no layers".into() } else { layers.join(", then ") }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Sets `name` to `value`: the occurrence that takes effect is changed in place, or the parameter is appended.
fn set_parameter(profile: &mut Profile, name: &str, value: &str) {
    match profile.parameters.iter_mut().rev().find(|p| p.name == name) {
        Some(p) => p.value = Value::Text(value.into()),
        None => profile.parameters.push(Parameter::text(name, value)),
    }
}

/// Lines `- NAME = old`, `+ NAME = new`, `~ NAME: old -> new` for the effective parameters, sorted by name.
fn diff(a: &Profile, b: &Profile) -> String {
    let index = |p: &Profile| -> std::collections::BTreeMap<String, (Value, Option<provisor_profile::UserAccess>)> {
        p.effective().into_iter().map(|p| (p.name.to_string(), (p.value.clone(), p.ua))).collect()
    };
    let (ma, mb) = (index(a), index(b));
    let mut names: Vec<&String> = ma.keys().chain(mb.keys()).collect();
    names.sort();
    names.dedup();
    let ua = |u: &Option<provisor_profile::UserAccess>| u.map_or("-".to_string(), |u| u.to_string());
    let mut out = String::new();
    for name in names {
        match (ma.get(name), mb.get(name)) {
            (Some((v, _)), None) => out += &format!("- {name} = {}\n", describe(v)),
            (None, Some((v, _))) => out += &format!("+ {name} = {}\n", describe(v)),
            (Some((va, ua_a)), Some((vb, ua_b))) => {
                if va != vb {
                    out += &format!("~ {name}: {} -> {}\n", describe(va), describe(vb));
                }
                if ua_a != ua_b {
                    out += &format!("~ {name} ua: {} -> {}\n", ua(ua_a), ua(ua_b));
                }
            }
            (None, None) => {}
        }
    }
    out
}
