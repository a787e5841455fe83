//! `provisor cert phone`: a test phone certificate from the site's generated CA.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use provisor_server::front::tls;
use provisor_server::inventory::Mac;

/// `provisor cert ...`.
#[derive(Subcommand)]
pub enum CertCommand {
    /// Issue a test phone certificate (X.509 v3, OU = model, L = serial, S = MAC, clientAuth) from the site's
    /// generated CA, as a Cisco phone's manufacturing certificate names the phone. The site must have
    /// `[https] test_phone_ca = true` (provisor init --phone-ca test): no real phone trusts or carries it.
    Phone {
        /// The site's configuration (default: $PROVISOR_CONFIG, then /etc/provisor/provisor.toml).
        #[arg(long, short, env = "PROVISOR_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// MAC address.
        #[arg(long)]
        mac: String,
        /// Product name, e.g. CP-8841-3PCC.
        #[arg(long)]
        model: String,
        /// Serial number (default: FCH + the last 8 hex digits of the MAC).
        #[arg(long)]
        serial: Option<String>,
        /// Where to write SEP<MAC>.pem and SEP<MAC>.key (default: the current directory).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
}

/// Runs `provisor cert`.
pub fn run(cmd: CertCommand) -> Result<ExitCode> {
    match cmd {
        CertCommand::Phone { config, mac, model, serial, out } => {
            let mac: Mac = mac.parse().map_err(anyhow::Error::msg)?;
            let Some((path, site)) = crate::site::load_config(config.as_deref())? else {
                bail!("no site configuration: pass --config FILE or set PROVISOR_CONFIG");
            };
            if !site.https.test_phone_ca {
                bail!(
                    "{}: [https] test_phone_ca is off: the site's phone certificates come from its phone CA ({}), \
                     which only its holder can issue from; set test_phone_ca = true for a lab",
                    path.display(),
                    if site.https.client_ca.is_empty() {
                        "none configured".to_string()
                    } else {
                        site.https.client_ca.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                    }
                );
            }
            if site.data_dir == std::path::Path::new(provisor_server::serve::MEMORY) {
                bail!("{}: data_dir is in memory: the generated CA changes at every start", path.display());
            }
            // The same CA `provisor serve` generates (and keeps) in data_dir/tls.
            provisor_server::inventory::make_private_dir(&site.data_dir)
                .with_context(|| format!("{}", site.data_dir.display()))?;
            let generated = tls::ensure_generated(&site.data_dir.join("tls"), std::slice::from_ref(&site.public_host))?;
            let serial = serial.unwrap_or_else(|| format!("FCH{}", &mac.as_str()[4..].to_uppercase()));
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let stem = out.join(format!("SEP{}", mac.as_str().to_uppercase()));
            let (cert, key) = tls::issue_phone_certificate(&generated, &stem, mac.as_str(), &model, &serial)?;
            eprintln!(
                "wrote    {} (OU={model}, L={serial}, S={mac}; signed by {})",
                cert.display(),
                generated.ca_cert.display()
            );
            eprintln!("wrote    {} (0600)", key.display());
            eprintln!(
                "\nA simulated phone presents it: provisor phone simulate --mac {mac} --model {model} --cert {} --cert-key {}",
                cert.display(),
                key.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
