//! `provisor trust ...`: enterprise phones' trust lists, signed and encrypted files (the formats are
//! `provisor_trust`'s; this is reading and writing files and printing).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use provisor_trust::header::hex;
use provisor_trust::signed::{self, SignedFile};
use provisor_trust::trust_list::{self, Spec};
use provisor_trust::{Certificate, Digest, Header, Role, Signer, TrustList, encrypted, pki};

use crate::files::{display, read_input, write_output};

/// Largest file these commands read.
const MAX: usize = 16 << 20;

/// `provisor trust`.
#[derive(Subcommand)]
pub enum TrustCommand {
    /// Start a site's own trust chain in DIR (new or empty): sast1.pem and sast2.pem (two SASTs, so one can
    /// rotate), tftp.pem (RSA-2048, signs files), tftp-ec.pem (EC P-256, the HTTPS certificate on port 6971), each
    /// certificate with its key (0600), and ITLFile.tlv (signer version 1.1, signed by sast1).
    Init {
        /// The directory.
        dir: PathBuf,
        /// Organization (O) in the certificates.
        #[arg(long, default_value = "Provisor")]
        organization: String,
        /// Host names or addresses the HTTPS certificate names (repeatable; default: the machine's name).
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
    },
    /// Build and sign an ITL (ITLFile.tlv).
    Itl(ListArgs),
    /// Build and sign a CTL (CTLFile.tlv).
    Ctl(ListArgs),
    /// Sign a file (a config, dial plan, softkey file, ...) as FILE.sgn.
    Sign {
        /// The file.
        file: PathBuf,
        /// The signing certificate with its private key (PEM): a TFTP-role certificate of the phones' trust list.
        #[arg(long, value_name = "PEM")]
        signer: PathBuf,
        /// Output (default: FILE.sgn); its base name goes into the header.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The signature's digest.
        #[arg(long, default_value = "sha1")]
        digest: Digest,
    },
    /// The file inside a .sgn (without checking the signature).
    Strip {
        /// The .sgn file.
        file: PathBuf,
        /// Output file, or - for standard output.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Check a signature: a .tlv against its own SAST (or, with --itl, as a phone holding that list does), a .sgn or
    /// .enc.sgn against --cert or the TFTP records of --itl. Prints "valid" and exits 0, or says what failed and
    /// exits 1 (2 for usage errors).
    Verify {
        /// The file.
        file: PathBuf,
        /// The certificate (PEM) that should have signed it.
        #[arg(long, value_name = "PEM", conflicts_with = "itl")]
        cert: Option<PathBuf>,
        /// A trust list the phone holds.
        #[arg(long, value_name = "TLV")]
        itl: Option<PathBuf>,
    },
    /// Encrypt SEP<MAC>.cnf.xml to a phone: writes SEP<MAC>.cnf.xml.enc.sgn and the signed stub SEP<MAC>.cnf.xml.sgn.
    Encrypt {
        /// The config.
        file: PathBuf,
        /// The signing certificate with its private key (PEM).
        #[arg(long, value_name = "PEM")]
        signer: PathBuf,
        /// The phone's certificate (PEM): its MIC or LSC.
        #[arg(long, value_name = "PEM")]
        phone_cert: PathBuf,
        /// Output directory (default: the config's).
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// The signature's digest.
        #[arg(long, default_value = "sha1")]
        digest: Digest,
    },
    /// Decrypt a .enc.sgn with the phone's private key.
    Decrypt {
        /// The .enc.sgn file.
        file: PathBuf,
        /// The phone's private key (PEM; a certificate beside it is ignored).
        #[arg(long, value_name = "PEM")]
        phone_key: PathBuf,
        /// Output file, or - for standard output.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Show a trust list, .sgn or .enc.sgn: header, signer, records, roles, hashes, signature validity.
    Show {
        /// The file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `trust itl` / `trust ctl`.
#[derive(Args)]
pub struct ListArgs {
    /// The output file; its base name goes into the header unless --name.
    #[arg(short, long)]
    output: PathBuf,
    /// SAST certificates: the first (with its private key) signs; a second may be given (at most two).
    #[arg(long, value_name = "PEM", required = true)]
    sast: Vec<PathBuf>,
    /// TFTP-role certificates (sign files; an EC one is the HTTPS certificate on 6971).
    #[arg(long, value_name = "PEM")]
    tftp: Vec<PathBuf>,
    /// CCM-role certificates.
    #[arg(long, value_name = "PEM")]
    ccm: Vec<PathBuf>,
    /// CCM+TFTP-role certificates.
    #[arg(long, value_name = "PEM")]
    ccm_tftp: Vec<PathBuf>,
    /// CAPF-role certificates.
    #[arg(long, value_name = "PEM")]
    capf: Vec<PathBuf>,
    /// APP-SERVER-role certificates.
    #[arg(long, value_name = "PEM")]
    app_server: Vec<PathBuf>,
    /// TVS-role certificates.
    #[arg(long, value_name = "PEM")]
    tvs: Vec<PathBuf>,
    /// Signer version: 1.1 makes phones fetch their config over HTTPS on port 6971.
    #[arg(long, default_value = "1.1", value_parser = ["1.0", "1.1"])]
    signer_version: String,
    /// The signature's digest.
    #[arg(long, default_value = "sha1")]
    digest: Digest,
    /// The file name inside the header (default: the output's base name).
    #[arg(long)]
    name: Option<String>,
}

fn now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

fn certificate(path: &Path) -> Result<Certificate> {
    Certificate::from_pem(&read_input(path, MAX)?).with_context(|| display(path))
}

fn signer(path: &Path) -> Result<Signer> {
    Signer::from_pem(&read_input(path, MAX)?).with_context(|| display(path))
}

fn base_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{}: no file name", display(path)))
}

/// Writes a file holding a private key: 0600.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}: cannot create", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("{}: cannot write", path.display()))
}

/// Runs `provisor trust`.
pub fn run(cmd: TrustCommand) -> Result<ExitCode> {
    match cmd {
        TrustCommand::Init { dir, organization, hosts } => init(&dir, &organization, hosts),
        TrustCommand::Itl(args) => list(args, "ITLFile.tlv"),
        TrustCommand::Ctl(args) => list(args, "CTLFile.tlv"),
        TrustCommand::Sign { file, signer: pem, output, digest } => {
            let content = read_input(&file, MAX)?;
            let output = output.unwrap_or_else(|| PathBuf::from(format!("{}.sgn", file.display())));
            let sgn = signed::sign(&content, &signer(&pem)?, &base_name(&output)?, digest, now())?;
            write_output(&output, &sgn)?;
            eprintln!("signed {} ({} bytes)", output.display(), sgn.len());
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Strip { file, output } => {
            let data = read_input(&file, MAX)?;
            write_output(&output, signed::strip(&data).with_context(|| display(&file))?)?;
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Verify { file, cert, itl } => verify(&file, cert.as_deref(), itl.as_deref()),
        TrustCommand::Encrypt { file, signer: pem, phone_cert, output, digest } => {
            let config = read_input(&file, MAX)?;
            let name = base_name(&file)?;
            if !name.ends_with(".cnf.xml") {
                bail!("{}: the config's name must end in .cnf.xml (SEP<MAC>.cnf.xml)", display(&file));
            }
            let dir = output.unwrap_or_else(|| file.parent().map(Path::to_path_buf).unwrap_or_default());
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let signer = signer(&pem)?;
            let phone = certificate(&phone_cert)?;
            let mut random = [0u8; 32];
            getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("random: {e}"))?;
            let r = encrypted::Randomness::from_bytes(random);
            let enc_name = format!("{name}.enc.sgn");
            let enc = encrypted::encrypt(&config, &signer, &phone, &enc_name, digest, now(), r)?;
            let stub = encrypted::stub(&config, &phone).with_context(|| display(&file))?;
            let sgn_name = format!("{name}.sgn");
            let stub_sgn = signed::sign(&stub, &signer, &sgn_name, digest, now())?;
            write_output(&dir.join(&enc_name), &enc)?;
            write_output(&dir.join(&sgn_name), &stub_sgn)?;
            eprintln!(
                "wrote {} (encrypted to {}) and {} (the stub)",
                dir.join(&enc_name).display(),
                phone.subject,
                dir.join(&sgn_name).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Decrypt { file, phone_key, output } => {
            let data = read_input(&file, MAX)?;
            let key = match provisor_trust::certificate::private_key(&read_input(&phone_key, MAX)?)
                .with_context(|| display(&phone_key))?
            {
                provisor_trust::KeyKind::Rsa(k) => k,
                provisor_trust::KeyKind::Ec(_) => {
                    bail!("{}: an EC key; configs are encrypted to RSA keys", display(&phone_key))
                }
            };
            write_output(&output, &encrypted::decrypt(&data, &key).with_context(|| display(&file))?)?;
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Show { file, json } => show(&file, json),
    }
}

fn init(dir: &Path, organization: &str, hosts: Vec<String>) -> Result<ExitCode> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{}: not empty: trust init writes only into a new or empty directory (it never replaces keys)",
            dir.display()
        );
    }
    write_trust_dir(dir, organization, hosts, true)?;
    eprintln!(
        "\nKeep sast1.pem and sast2.pem safe: a phone that holds this list takes a new one only if one of them signed it."
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes a new trust chain into `dir` (made private): sast1, sast2, tftp (RSA-2048), tftp-ec (EC P-256 naming
/// `hosts`) and `ITLFile.tlv` (signer version 1.1, signed by sast1).
pub fn write_trust_dir(dir: &Path, organization: &str, mut hosts: Vec<String>, verbose: bool) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("{}: cannot make it private", dir.display()))?;
    }
    if hosts.is_empty() {
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
        hosts.push(if host.is_empty() { "localhost".into() } else { host });
    }
    let mut rng = getrandom::SysRng;
    let sast1 = pki::rsa_identity(&mut rng, "SAST1", organization)?;
    let sast2 = pki::rsa_identity(&mut rng, "SAST2", organization)?;
    let tftp = pki::rsa_identity(&mut rng, "TFTP", organization)?;
    let tftp_ec = pki::ec_identity("TFTP-EC", organization, &hosts)?;
    for (name, issued) in [("sast1.pem", &sast1), ("sast2.pem", &sast2), ("tftp.pem", &tftp), ("tftp-ec.pem", &tftp_ec)]
    {
        write_private(&dir.join(name), &issued.combined())?;
        if verbose {
            eprintln!("wrote    {}", dir.join(name).display());
        }
    }
    let signer = Signer::from_pem(sast1.combined().as_bytes())?;
    let cert = |i: &pki::Issued| Certificate::from_pem(i.certificate_pem.as_bytes());
    let spec = Spec {
        signer: &signer,
        records: vec![(cert(&sast2)?, Role::Sast), (cert(&tftp)?, Role::Tftp), (cert(&tftp_ec)?, Role::Tftp)],
        signer_version: (1, 1),
        digest: Digest::Sha1,
        filename: "ITLFile.tlv",
        timestamp: now(),
    };
    let itl = trust_list::build(&spec)?;
    write_output(&dir.join("ITLFile.tlv"), &itl)?;
    if verbose {
        eprintln!(
            "wrote    {} (signer version 1.1, signed by SAST1; SAST2, TFTP and TFTP-EC records)",
            dir.join("ITLFile.tlv").display()
        );
    }
    Ok(())
}

fn list(args: ListArgs, default_name: &str) -> Result<ExitCode> {
    if args.sast.len() > 2 {
        bail!("--sast given {} times: a trust list holds at most 2 SASTs", args.sast.len());
    }
    let signer = signer(&args.sast[0])?;
    let mut records = Vec::new();
    if let Some(second) = args.sast.get(1) {
        records.push((certificate(second)?, Role::Sast));
    }
    for (paths, role) in [
        (&args.ccm, Role::Ccm),
        (&args.ccm_tftp, Role::CcmTftp),
        (&args.tftp, Role::Tftp),
        (&args.capf, Role::Capf),
        (&args.app_server, Role::AppServer),
        (&args.tvs, Role::Tvs),
    ] {
        for p in paths {
            records.push((certificate(p)?, role));
        }
    }
    let name = match args.name {
        Some(n) => n,
        None => base_name(&args.output).unwrap_or_else(|_| default_name.to_string()),
    };
    let signer_version = if args.signer_version == "1.0" { (1, 0) } else { (1, 1) };
    let spec =
        Spec { signer: &signer, records, signer_version, digest: args.digest, filename: &name, timestamp: now() };
    let data = trust_list::build(&spec)?;
    write_output(&args.output, &data)?;
    eprintln!(
        "wrote {} ({} records, signed by {})",
        args.output.display(),
        spec.records.len() + 1,
        signer.certificate.subject
    );
    Ok(ExitCode::SUCCESS)
}

fn is_trust_list(path: &Path, data: &[u8]) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tlv"))
        || Header::parse(data).is_ok_and(|h| h.signer_version.is_some())
}

fn verify(file: &Path, cert: Option<&Path>, itl: Option<&Path>) -> Result<ExitCode> {
    let data = read_input(file, MAX)?;
    let name = display(file);
    let verdict: Result<String, provisor_trust::TrustError> = if is_trust_list(file, &data) {
        let list = TrustList::parse(&data).with_context(|| name.clone())?;
        match itl {
            Some(previous) => {
                let prev_data = read_input(previous, MAX)?;
                let prev = TrustList::parse(&prev_data).with_context(|| display(previous))?;
                list.verify_against(&data, &prev)
                    .map(|()| format!("signed by {}, a SAST of {}", list.header.signer_name, display(previous)))
            }
            None => list.verify(&data).map(|()| format!("signed by its own SAST {}", list.header.signer_name)),
        }
    } else {
        let f = SignedFile::parse(&data).with_context(|| name.clone())?;
        match (cert, itl) {
            (Some(c), _) => {
                let c = certificate(c)?;
                f.verify(&data, &c).map(|()| format!("signed by {}", c.subject))
            }
            (None, Some(list)) => {
                let list_data = read_input(list, MAX)?;
                let l = TrustList::parse(&list_data).with_context(|| display(list))?;
                l.verifies_file(&data, &f.header)
                    .map(|c| format!("signed by {}, a TFTP record of {}", c.subject, display(list)))
            }
            (None, None) => {
                eprintln!("provisor: {name}: give --cert PEM or --itl TLV to verify a signed file against");
                return Ok(ExitCode::from(2));
            }
        }
    };
    match verdict {
        Ok(how) => {
            println!("valid");
            eprintln!("{name}: {how}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("invalid");
            eprintln!("{name}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn show(file: &Path, json: bool) -> Result<ExitCode> {
    let data = read_input(file, MAX)?;
    let name = display(file);
    let h = Header::parse(&data).with_context(|| name.clone())?;
    let mut v = serde_json::json!({
        "version": format!("{}.{}", h.version.0, h.version.1),
        "header_length": h.length,
        "signer": h.signer_name,
        "issuer": h.issuer_name,
        "serial": hex(&h.serial),
        "digest": h.digest.name(),
        "signature_bytes": h.signature.len(),
        "filename": h.filename,
        "timestamp": h.timestamp,
    });
    if let Some((a, b)) = h.signer_version {
        v["signer_version"] = format!("{a}.{b}").into();
    }
    if let Some(e) = &h.encryption {
        v["encryption"] = serde_json::json!({
            "cipher": "aes-128-cbc",
            "iv": hex(&e.iv),
            "wrapped_key_bytes": e.wrapped_key.len(),
            "padding": e.padding,
            "hash_digest": e.hash_digest.name(),
            "hash": hex(&e.hash),
        });
    }
    if is_trust_list(file, &data) {
        let list = TrustList::parse(&data).with_context(|| name.clone())?;
        let records: Vec<serde_json::Value> = list
            .records
            .iter()
            .map(|r| {
                let c = r.parsed_certificate().ok();
                serde_json::json!({
                    "role": r.role().map_or_else(|| format!("unknown ({})", r.function), |x| x.name().to_string()),
                    "subject": r.subject,
                    "issuer": r.issuer,
                    "serial": hex(&r.serial),
                    "key": match r.public_key.first() { Some(4) if r.public_key.len() == 65 => "EC P-256", _ => "RSA" },
                    "sha1": c.as_ref().map(|c| hex(&c.sha1())),
                })
            })
            .collect();
        v["records"] = records.into();
        v["signature"] = match list.verify(&data) {
            Ok(()) => "valid (its own SAST)".into(),
            Err(e) => format!("invalid: {e}").into(),
        };
    } else {
        v["content_bytes"] = (data.len() - h.length).into();
        v["signature"] = "not checked (trust verify --cert PEM | --itl TLV)".into();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let obj = v.as_object().cloned().unwrap_or_default();
    for (k, val) in obj {
        match (k.as_str(), val) {
            ("records", serde_json::Value::Array(rs)) => {
                println!("records:");
                for r in rs {
                    println!(
                        "  {:<10} {}  serial {}  {}  sha1 {}",
                        r["role"].as_str().unwrap_or(""),
                        r["subject"].as_str().unwrap_or(""),
                        r["serial"].as_str().unwrap_or(""),
                        r["key"].as_str().unwrap_or(""),
                        r["sha1"].as_str().unwrap_or("-")
                    );
                }
            }
            ("encryption", serde_json::Value::Object(e)) => {
                println!("encryption:");
                for (ek, ev) in e {
                    println!("  {ek:<18} {}", ev.as_str().map_or_else(|| ev.to_string(), str::to_string));
                }
            }
            (k, val) => println!("{k:<20} {}", val.as_str().map_or_else(|| val.to_string(), str::to_string)),
        }
    }
    Ok(ExitCode::SUCCESS)
}
