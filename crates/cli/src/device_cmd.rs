//! `provisor device ...` and `provisor group ...`: the inventory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use provisor_profile::dictionary;
use provisor_server::inventory::{
    AnyStore, Device, Group, Mac, MemoryStore, Secrets, Store, csv, effective_parameters,
};

use crate::site::{Access, SiteArgs};
use provisor_server::content::FsContent;
use provisor_server::journal::MemoryJournal;
use provisor_server::provision::{Ports, Provisioner};

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Add a device; its AES-256-CBC key and RFC 8188 IKM are generated.
    Add {
        /// MAC address (any common form: 00:0e:08:aa:bb:cc, 000E08AABBCC, SEP000E08AABBCC).
        mac: String,
        #[command(flatten)]
        fields: Fields,
    },
    /// List devices: model, group, firmware, last seen and state (`new`: never seen; `stale`: not seen for
    /// `--stale`, 2 days by default; `ok`).
    List {
        /// Only devices of this group.
        #[arg(long)]
        group: Option<String>,
        /// Only devices whose last reported firmware contains this (e.g. 11.3 or sip88xx.12).
        #[arg(long)]
        firmware: Option<String>,
        /// Only devices not seen for at least this long (e.g. 2d, 12h); never-seen devices included.
        #[arg(long, value_name = "DURATION", value_parser = provisor_phone::drive::parse_duration)]
        stale: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a device: fields, own parameters and the parameters that apply after inheritance.
    Show {
        /// MAC address.
        mac: String,
        /// Include the device's secrets (key, digest, IKM, random path); without it, random profile paths in what it was
        /// served are masked.
        #[arg(long)]
        secrets: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a device's fields or parameters.
    Set {
        /// MAC address.
        mac: String,
        #[command(flatten)]
        fields: Fields,
        /// Remove a parameter (repeatable).
        #[arg(long, value_name = "NAME")]
        unset: Vec<String>,
        /// Generate a new key and IKM (takes effect at the phone's next resync over HTTPS).
        #[arg(long)]
        rotate_keys: bool,
        /// The EVP_BytesToKey digest this device's firmware expects.
        #[arg(long, value_parser = ["sha256", "md5"])]
        digest: Option<String>,
        /// Enterprise phones: the phone's certificate (PEM, its MIC or LSC) to encrypt its config to
        /// (SEP<MAC>.cnf.xml.enc.sgn); `none` removes it.
        #[arg(long, value_name = "PEM|none")]
        cert: Option<String>,
        /// Enterprise phones: a trust list of its own, served as ITLSEP<MAC>.tlv (checked before it is kept); `none`
        /// removes it.
        #[arg(long, value_name = "TLV|none")]
        itl: Option<String>,
        /// Enterprise phones: a CTL of its own, served as CTLSEP<MAC>.tlv; `none` removes it.
        #[arg(long, value_name = "TLV|none")]
        ctl: Option<String>,
    },
    /// Remove devices: every one named, or none if one of them does not exist.
    Rm {
        /// MAC addresses.
        macs: Vec<String>,
        /// Also the MACs in this file, one per line (# starts a comment).
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// Import devices from CSV: all rows or none. Columns: mac (required), model, serial, description, group; any
    /// other column is a parameter (e.g. User_ID_1_ or "Display Name[1]"); empty cells are not set.
    Import {
        /// The CSV file, or - for standard input.
        file: PathBuf,
        /// Rows for existing devices update them (their non-empty cells replace what they name; keys stay) instead of
        /// failing.
        #[arg(long)]
        update: bool,
        /// Print what would change, one line per device and parameter, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Take parameter names the phones' dictionary does not know (phones ignore unknown names).
        #[arg(long)]
        allow_unknown: bool,
    },
    /// Export every device as CSV (the import format) on standard output.
    Export,
    /// Print the audit log (what `provisor serve` answered, one JSON object per request), oldest first.
    Audit {
        /// Only this device's requests.
        mac: Option<String>,
        /// How many of the most recent entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Show the random profile paths (masked as profile/********/ otherwise).
        #[arg(long)]
        secrets: bool,
    },
    /// Re-arm devices (identity = "mac"): the next fetch over HTTPS that names each one gets its secrets, once (a
    /// replaced phone, a factory reset). Devices are armed when added. Every MAC must exist, or none is armed.
    Arm {
        /// MAC addresses.
        macs: Vec<String>,
    },
    /// Show what the server sends a device: rendered by the server's own path (the secure flow's Profile_Rule, key
    /// and random path, the Report_Rule and Upgrade_Rule it adds), checked as a phone reads it, before gzip and
    /// encryption. Keys, the random path and passwords are masked unless --secrets.
    Render {
        /// MAC address.
        mac: String,
        /// Which file: the device's own (an MPP phone's profile, an enterprise phone's SEP<MAC>.cnf.xml), the
        /// bootstrap profile, or XMLDefault.cnf.xml.
        #[arg(long, value_enum, default_value = "own")]
        file: RenderFile,
        /// A directory of templates (*.xml) instead of the configuration's `[templates] dir`.
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
        /// Show keys, the random path and passwords.
        #[arg(long)]
        secrets: bool,
    },
}

/// The files `device render` shows.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RenderFile {
    /// The device's own file.
    Own,
    /// The bootstrap profile.
    Bootstrap,
    /// XMLDefault.cnf.xml.
    Xmldefault,
}

/// Fields of a device.
#[derive(Args)]
pub struct Fields {
    /// Product name, e.g. CP-8841-3PCC.
    #[arg(long)]
    model: Option<String>,
    /// Serial number.
    #[arg(long)]
    serial: Option<String>,
    /// Free text.
    #[arg(long)]
    description: Option<String>,
    /// Group.
    #[arg(long)]
    group: Option<String>,
    /// A parameter, e.g. --param User_ID_1_=2001 (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Take parameter names the phones' dictionary does not know (refused by default, with the closest names).
    #[arg(long)]
    allow_unknown: bool,
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create a group with exactly these parameters (an existing one only with --replace). `defaults` applies to
    /// every device, `model:<model>` to every device of a model.
    Put {
        /// Group name.
        name: String,
        /// Parent group (inherited from).
        #[arg(long)]
        parent: Option<String>,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// A parameter (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Replace an existing group, dropping every parameter not given here.
        #[arg(long)]
        replace: bool,
        /// Take parameter names the phones' dictionary does not know.
        #[arg(long)]
        allow_unknown: bool,
    },
    /// Change a group: set and unset parameters, keeping the others (the group is created if it does not exist).
    Set {
        /// Group name.
        name: String,
        /// Parent group (inherited from).
        #[arg(long)]
        parent: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// A parameter to set (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// A parameter to remove (repeatable).
        #[arg(long, value_name = "NAME")]
        unset: Vec<String>,
        /// Take parameter names the phones' dictionary does not know.
        #[arg(long)]
        allow_unknown: bool,
    },
    /// List groups.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a group.
    Show {
        /// Group name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a group that no device or group uses.
    Rm {
        /// Group name.
        name: String,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")
}

/// Parses `NAME=VALUE`, accepting web-UI labels for names, and checks the name and value against the dictionary.
fn parameter(pair: &str, allow_unknown: bool) -> Result<(String, String)> {
    Ok(provisor_server::inventory::parameter::parameter(pair, allow_unknown)?)
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn apply_fields(d: &mut Device, f: Fields) -> Result<()> {
    if let Some(v) = f.model {
        d.model = v;
    }
    if let Some(v) = f.serial {
        d.serial = v;
    }
    if let Some(v) = f.description {
        d.description = v;
    }
    if let Some(v) = f.group {
        d.group = if v.is_empty() { None } else { Some(v) };
    }
    for p in &f.params {
        let (n, v) = parameter(p, f.allow_unknown)?;
        d.params.insert(n, v);
    }
    Ok(())
}

pub fn run_device(site: SiteArgs, cmd: DeviceCommand) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let access = match &cmd {
            DeviceCommand::Add { .. }
            | DeviceCommand::Set { .. }
            | DeviceCommand::Rm { .. }
            | DeviceCommand::Arm { .. } => Access::Write,
            DeviceCommand::Import { dry_run: false, .. } => Access::Write,
            // A dry run against a site with no inventory yet: every row is new, and nothing is created.
            DeviceCommand::Import { file, update, allow_unknown, dry_run: true } if !site.inventory_exists()? => {
                let options = csv::ImportOptions { update: *update, allow_unknown: *allow_unknown };
                return import(&MemoryStore::new(), file, options, true).await;
            }
            _ => Access::Read,
        };
        let store = site.open(access).await?;
        match cmd {
            DeviceCommand::Add { mac, fields } => {
                let mac: Mac = mac.parse().map_err(anyhow::Error::msg)?;
                let mut d = Device::blank(mac, Secrets::generate()?);
                apply_fields(&mut d, fields)?;
                store.add_device(&d).await?;
                eprintln!("added {}", d.mac);
            }
            DeviceCommand::List { group, firmware, stale, json } => {
                let devices = store.devices().await?;
                let states = provisor_server::journal::states(&store).await?;
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let stale_ms = stale.unwrap_or(2 * 86_400) as i64 * 1000;
                let mut rows = Vec::new();
                for d in &devices {
                    let seen = states.get(&d.mac).cloned().unwrap_or_default();
                    let state = match seen.last_seen_ms {
                        None => "new",
                        Some(t) if now_ms - t >= stale_ms => "stale",
                        Some(_) => "ok",
                    };
                    let keep = group.as_ref().is_none_or(|g| d.group.as_ref() == Some(g))
                        && firmware
                            .as_ref()
                            .is_none_or(|f| seen.firmware.as_ref().is_some_and(|v| v.contains(f.as_str())))
                        && (stale.is_none() || state != "ok");
                    if keep {
                        rows.push((d, seen, state));
                    }
                }
                if json {
                    let v: Vec<serde_json::Value> = rows
                        .iter()
                        .map(|(d, seen, state)| {
                            let mut v = serde_json::to_value(d).unwrap_or_default();
                            v["firmware"] = serde_json::json!(seen.firmware);
                            v["last_seen"] = serde_json::json!(seen.last_seen_ms.map(time));
                            v["last_address"] = serde_json::json!(seen.last_address);
                            v["state"] = serde_json::json!(state);
                            v
                        })
                        .collect();
                    print_json(&v)?;
                } else {
                    println!(
                        "{:<12}  {:<16} {:<12} {:<22} {:<24} state",
                        "mac", "model", "group", "firmware", "last seen"
                    );
                    for (d, seen, state) in &rows {
                        println!(
                            "{}  {:<16} {:<12} {:<22} {:<24} {state}",
                            d.mac,
                            d.model,
                            d.group.as_deref().unwrap_or("-"),
                            seen.firmware.as_deref().unwrap_or("-"),
                            seen.last_seen_ms.map_or("never".to_string(), time),
                        );
                    }
                    eprintln!("{} of {} device(s)", rows.len(), devices.len());
                }
            }
            DeviceCommand::Show { mac, secrets, json } => {
                let mac: Mac = mac.parse().map_err(anyhow::Error::msg)?;
                let d = store.device(&mac).await?.with_context(|| format!("no device {mac}"))?;
                let effective = effective_parameters(&store, &d).await?;
                let status = provisor_server::journal::status(&store, &mac, 10).await?;
                let status = if secrets { status } else { status.masked() };
                let armed = store.is_armed(&mac).await?;
                if json {
                    let mut v = serde_json::to_value(&d)?;
                    v["armed"] = armed.into();
                    v["effective"] = serde_json::to_value(&effective)?;
                    v["status"] = serde_json::to_value(&status)?;
                    if secrets {
                        v["secrets"] = serde_json::to_value(&d.secrets)?;
                    }
                    print_json(&v)?;
                } else {
                    println!("mac          {}", d.mac);
                    println!("model        {}", d.model);
                    println!("serial       {}", d.serial);
                    println!("description  {}", d.description);
                    println!("group        {}", d.group.as_deref().unwrap_or("-"));
                    if armed {
                        println!("armed        yes: with identity = \"mac\", its next HTTPS fetch gets its secrets");
                    }
                    if secrets {
                        println!("aes key      {} (digest {})", d.secrets.aes_key, d.secrets.aes_digest);
                        println!("ikm          {}", d.secrets.ikm);
                        println!("path         {}", d.secrets.path_token);
                        if let Some(p) = &d.secrets.previous {
                            println!("rotating     old path {} stays valid until the phone resyncs", p.path_token);
                        }
                    }
                    println!("parameters (after defaults, model and group inheritance):");
                    for (n, v) in &effective {
                        let own = if d.params.contains_key(n) { "" } else { "  (inherited)" };
                        println!("  {n} = {v:?}{own}");
                    }
                    print_status(&status);
                }
            }
            DeviceCommand::Arm { macs } => {
                if macs.is_empty() {
                    bail!("no MAC given");
                }
                let macs: Vec<Mac> =
                    macs.iter().map(|m| m.parse::<Mac>().map_err(anyhow::Error::msg)).collect::<Result<_>>()?;
                for mac in &macs {
                    store.device(mac).await?.with_context(|| format!("no device {mac}; nothing was armed"))?;
                }
                for mac in &macs {
                    store.arm(mac).await?;
                    eprintln!("armed {mac}: its next fetch over HTTPS gets its secrets, once (identity = \"mac\")");
                }
            }
            DeviceCommand::Set { mac, fields, unset, rotate_keys, digest, cert, itl, ctl } => {
                let mac: Mac = mac.parse().map_err(anyhow::Error::msg)?;
                let mut d = store.device(&mac).await?.with_context(|| format!("no device {mac}"))?;
                // Checked before anything changes.
                let cert = match cert.as_deref() {
                    None => None,
                    Some("none") => Some(None),
                    Some(path) => {
                        let pem = crate::files::read_input(Path::new(path), 1 << 20)?;
                        let c = provisor_trust::Certificate::from_pem(&pem).with_context(|| path.to_string())?;
                        c.rsa_key().with_context(|| format!("{path}: configs are encrypted to RSA keys"))?;
                        Some(Some(c))
                    }
                };
                let lists = [("ITLSEP", itl), ("CTLSEP", ctl)]
                    .into_iter()
                    .filter_map(|(prefix, arg)| arg.map(|a| (prefix, a)))
                    .map(|(prefix, arg)| {
                        let bytes = if arg == "none" {
                            None
                        } else {
                            let data = crate::files::read_input(Path::new(&arg), 1 << 20)?;
                            let list = provisor_trust::TrustList::parse(&data).with_context(|| arg.clone())?;
                            list.verify(&data).with_context(|| format!("{arg}: its signature"))?;
                            Some(data)
                        };
                        Ok((format!("{prefix}{}.tlv", mac.as_str().to_uppercase()), bytes))
                    })
                    .collect::<Result<Vec<_>>>()?;
                apply_fields(&mut d, fields)?;
                for n in &unset {
                    d.params.remove(&dictionary::element_name(n));
                }
                if rotate_keys {
                    // The old secrets stay valid until the phone has fetched the new ones (at its next resync).
                    d.secrets = d.secrets.rotated()?;
                }
                if let Some(md) = digest {
                    d.secrets.aes_digest = md;
                }
                store.update_device(&d).await?;
                if let Some(c) = cert {
                    store.set_phone_certificate(&mac, c.as_ref().map(|c| c.der.as_slice())).await?;
                    match c {
                        Some(c) => {
                            eprintln!("{mac}: its config is encrypted to {} (SEP<MAC>.cnf.xml.enc.sgn)", c.subject)
                        }
                        None => eprintln!("{mac}: no phone certificate any more"),
                    }
                }
                if !lists.is_empty() {
                    let dir = site.data_dir()?.join("trust");
                    provisor_server::inventory::make_private_dir(&dir).with_context(|| dir.display().to_string())?;
                    for (name, bytes) in lists {
                        match bytes {
                            Some(b) => {
                                crate::files::write_output(&dir.join(&name), &b)?;
                                eprintln!("{mac}: served {name}");
                            }
                            None => {
                                let _ = std::fs::remove_file(dir.join(&name));
                                eprintln!("{mac}: {name} removed");
                            }
                        }
                    }
                }
                eprintln!("updated {}", d.mac);
            }
            DeviceCommand::Rm { macs, from } => return remove(&store, macs, from.as_deref()).await,
            DeviceCommand::Import { file, update, dry_run, allow_unknown } => {
                return import(&store, &file, csv::ImportOptions { update, allow_unknown }, dry_run).await;
            }
            DeviceCommand::Export => export(&store).await?,
            DeviceCommand::Audit { mac, limit, secrets } => {
                let mac: Option<Mac> = mac.map(|m| m.parse()).transpose().map_err(anyhow::Error::msg)?;
                let dir = if site.database_url()?.is_some() { PathBuf::new() } else { site.data_dir()? };
                for line in provisor_server::journal::audit(&store, &dir, mac.as_ref(), limit)
                    .await
                    .with_context(|| format!("reading the audit trail of {}", dir.join("audit.log").display()))?
                {
                    if secrets {
                        println!("{line}");
                    } else {
                        println!("{}", provisor_server::journal::mask_path_tokens(&line));
                    }
                }
            }
            DeviceCommand::Render { mac, file, templates, secrets } => {
                let mac: Mac = mac.parse().map_err(anyhow::Error::msg)?;
                render(&site, store, &mac, file, templates, secrets).await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `device render`: the server's own rendering, through a [`Provisioner`] on the site's configuration that records
/// nothing.
async fn render(
    site: &SiteArgs,
    store: AnyStore,
    mac: &Mac,
    file: RenderFile,
    templates: Option<PathBuf>,
    secrets: bool,
) -> Result<()> {
    use provisor_server::provision::preview::{Rendition, mask_secrets};
    let mut config = match crate::site::load_config(site.config.as_deref())? {
        Some((_, config)) => config,
        None => {
            eprintln!("note: no site configuration: rendered with the default settings (the demo's host and ports)");
            provisor_server::config::Config::default()
        }
    };
    if templates.is_some() {
        config.templates.dir = templates;
    }
    let port = |a: Option<std::net::SocketAddr>| a.map(|a| a.port());
    let ports = Ports {
        http: port(config.http.listen),
        https: port(config.https.listen),
        tftp: port(config.tftp.listen),
        syslog: port(config.syslog.listen),
    };
    let content = FsContent::new(&config);
    let provisioner = Provisioner::new(store, MemoryJournal::new(), content, config, ports)
        .map_err(|e| anyhow::anyhow!("cannot render for {mac}: {e}"))?;
    let rendition = match file {
        RenderFile::Own => Rendition::Own,
        RenderFile::Bootstrap => Rendition::Bootstrap,
        RenderFile::Xmldefault => Rendition::XmlDefault,
    };
    let preview = provisioner.preview(mac, rendition).await.map_err(|e| anyhow::anyhow!("{mac}: {e}"))?;
    eprintln!("# {mac}: {}", preview.served_as);
    let text = if secrets { preview.text } else { mask_secrets(&preview.text, &preview.secret_names) };
    print!("{text}");
    Ok(())
}

/// `device rm`: every MAC named (arguments and `--from`) exists, or nothing is removed.
async fn remove(store: &AnyStore, mut macs: Vec<String>, from: Option<&Path>) -> Result<ExitCode> {
    if let Some(file) = from {
        let text = String::from_utf8(crate::files::read_input(file, 64 << 20)?)
            .with_context(|| format!("{}: not text", crate::files::display(file)))?;
        macs.extend(
            text.lines().map(|l| l.split('#').next().unwrap_or("").trim().to_string()).filter(|l| !l.is_empty()),
        );
    }
    if macs.is_empty() {
        bail!("no MAC given (arguments or --from FILE)");
    }
    let mut parsed: Vec<Mac> = Vec::with_capacity(macs.len());
    for m in &macs {
        parsed.push(m.parse().map_err(anyhow::Error::msg)?);
    }
    let mut missing = Vec::new();
    for mac in &parsed {
        if store.device(mac).await?.is_none() {
            missing.push(mac.to_string());
        }
    }
    if !missing.is_empty() {
        bail!("no device {}: nothing was removed", missing.join(", "));
    }
    for mac in &parsed {
        store.remove_device(mac).await?;
    }
    eprintln!("removed {} device(s)", parsed.len());
    Ok(ExitCode::SUCCESS)
}

async fn import(store: &impl Store, file: &Path, options: csv::ImportOptions, dry_run: bool) -> Result<ExitCode> {
    let name = crate::files::display(file);
    let data = crate::files::read_input(file, 512 << 20)?;
    let import = match csv::read_devices(store, &data, options).await {
        Ok(d) => d,
        Err(csv::ImportError::Rows(rows)) => {
            for r in &rows {
                eprintln!("{name}:{r}");
            }
            eprintln!("{name}: {} bad row(s); nothing was imported", rows.len());
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    let summary =
        format!("{} new, {} changed, {} unchanged device(s)", import.add.len(), import.update.len(), import.unchanged);
    if dry_run {
        for line in import.diff() {
            println!("{line}");
        }
        eprintln!("{name}: would make {summary}; nothing was changed (--dry-run)");
        return Ok(ExitCode::SUCCESS);
    }
    let total = import.add.len() + import.update.len();
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} devices ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    import.apply(store, &|n| bar.set_position(n as u64)).await?;
    bar.finish_and_clear();
    eprintln!("{name}: {summary}");
    Ok(ExitCode::SUCCESS)
}

async fn export(store: &AnyStore) -> Result<()> {
    Ok(csv::write_devices(store, std::io::stdout().lock()).await?)
}

pub fn run_group(site: SiteArgs, cmd: GroupCommand) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let access = match &cmd {
            GroupCommand::Put { .. } | GroupCommand::Set { .. } | GroupCommand::Rm { .. } => Access::Write,
            _ => Access::Read,
        };
        let store = site.open(access).await?;
        match cmd {
            GroupCommand::Put { name, parent, description, params, replace, allow_unknown } => {
                let params = params.iter().map(|p| parameter(p, allow_unknown)).collect::<Result<BTreeMap<_, _>>>()?;
                if !replace && store.group(&name).await?.is_some() {
                    bail!(
                        "group {name:?} exists: `provisor group set {name} --param ...` changes some parameters and \
                         keeps the others; `group put --replace` replaces the whole group"
                    );
                }
                store.put_group(&Group { name: name.clone(), parent, description, params }).await?;
                eprintln!("saved group {name}");
            }
            GroupCommand::Set { name, parent, description, params, unset, allow_unknown } => {
                let mut g = store.group(&name).await?.unwrap_or_else(|| Group {
                    name: name.clone(),
                    parent: None,
                    description: String::new(),
                    params: BTreeMap::new(),
                });
                for p in &params {
                    let (n, v) = parameter(p, allow_unknown)?;
                    g.params.insert(n, v);
                }
                for n in &unset {
                    g.params.remove(&dictionary::element_name(n));
                }
                if parent.is_some() {
                    g.parent = parent;
                }
                if let Some(d) = description {
                    g.description = d;
                }
                store.put_group(&g).await?;
                eprintln!("saved group {name} ({} parameter(s))", g.params.len());
            }
            GroupCommand::List { json } => {
                let groups = store.groups().await?;
                if json {
                    print_json(&groups)?;
                } else {
                    for g in &groups {
                        println!(
                            "{:<24} parent {:<16} {} parameter(s)",
                            g.name,
                            g.parent.as_deref().unwrap_or("-"),
                            g.params.len()
                        );
                    }
                }
            }
            GroupCommand::Show { name, json } => {
                let g = store.group(&name).await?.with_context(|| format!("no group {name:?}"))?;
                if json {
                    print_json(&g)?;
                } else {
                    println!("group        {}", g.name);
                    println!("parent       {}", g.parent.as_deref().unwrap_or("-"));
                    println!("description  {}", g.description);
                    for (n, v) in &g.params {
                        println!("  {n} = {v:?}");
                    }
                }
            }
            GroupCommand::Rm { name } => {
                if !store.remove_group(&name).await? {
                    bail!("no group {name:?}");
                }
                eprintln!("removed group {name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn time(ms: i64) -> String {
    provisor_server::journal::rfc3339(ms)
}

fn print_status(s: &provisor_server::journal::DeviceStatus) {
    println!("on the network:");
    match s.last_seen_ms {
        Some(t) => println!("  last seen    {} from {}", time(t), s.last_address.as_deref().unwrap_or("-")),
        None => println!("  last seen    never"),
    }
    if let Some(f) = &s.firmware {
        println!("  firmware     {f}");
    }
    if let Some((file, proto, hash, at)) = &s.served {
        println!("  last served  {file} over {proto} at {} (sha256 {hash})", time(*at));
    }
    if let Some(t) = s.report_ms {
        println!("  last report  {}", time(t));
        if s.drift.is_empty() {
            println!("  drift        none: the report matches what was served");
        } else {
            println!("  drift        {} parameter(s) differ from what was served:", s.drift.len());
            for d in &s.drift {
                println!(
                    "    {}: served {:?}, reported {}",
                    d.name,
                    d.served,
                    d.reported.as_ref().map_or("(absent)".to_string(), |r| format!("{r:?}"))
                );
            }
        }
    }
    if !s.events.is_empty() {
        println!("  recent events (newest first):");
        for e in &s.events {
            println!("    {}  {:<8} {}", time(e.at_ms), e.kind, e.text);
        }
    }
}
