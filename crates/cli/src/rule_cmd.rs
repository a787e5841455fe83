//! `provisor rule ...`: the phones' provisioning language, evaluated as a phone does.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use provisor_rules::SyntaxError;
use provisor_rules::condition;
use provisor_rules::macros::{self, Context, Variables};
use provisor_rules::rule::{Rule, RuleKind, Selection};
use provisor_rules::schedule::{self, ResyncParameters, SplitMix64, TimeOfDay};
use serde_json::json;

/// Exit code for rule text that does not parse or evaluate (the message points at the column).
const SYNTAX_ERROR: u8 = 2;

#[derive(Subcommand)]
pub enum RuleCommand {
    /// Expand the macros in TEXT and print the result (nothing else).
    ///
    /// Unknown names stay as written; $SA..$SD are expanded only with --context credential.
    Expand {
        #[command(flatten)]
        vars: VarArgs,
        /// Where the text sits: general (default) or credential (the argument of --key/--uid/--pwd).
        #[arg(long, value_enum, default_value_t = ContextArg::General)]
        context: ContextArg,
        /// The text to expand.
        text: String,
    },
    /// Evaluate a conditional expression (as in Resync_Trigger_*, without "( )?") and print true or false.
    Cond {
        #[command(flatten)]
        vars: VarArgs,
        /// The condition, e.g. '$UPGTMR gt 300 and $PRVTMR ge 600'.
        expr: String,
    },
    /// Evaluate a Profile_Rule, Upgrade_Rule or Report_Rule: which alternative, assignments, options, URL.
    ///
    /// --json prints {"alternative": N|null, "assignments": [{"name", "value"}], "options": {"key", "uid", "pwd",
    /// "post", "alias"}, "url": {"scheme", "host", "port", "path"}|null}; "alternative" counts from 0, null when
    /// no alternative applies (the rule is skipped). Report rules print an array, one object per item.
    Eval {
        #[command(flatten)]
        vars: VarArgs,
        /// The TFTP server from DHCP option 66/150, used by profile-rule URLs without a server.
        #[arg(long)]
        dhcp_server: Option<String>,
        /// Which parameter the rule comes from.
        #[arg(long, value_enum, default_value_t = KindArg::Profile)]
        kind: KindArg,
        /// The rule.
        rule: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compute when the phone resyncs next, and its retry delays, from its parameters.
    ///
    /// --json prints {"boot": D|null, "next_resync": {"delay": D, "reason": "periodic"|"resync_at"|"error_retry"}
    /// |null, "error_retry": [D, ...], "upgrade_retry": [D, ...], "forced_resync_delay": D}; delays in seconds,
    /// "error_retry" and "upgrade_retry" after 1, 2, ... consecutive failures.
    Schedule {
        /// A parameter, e.g. --param Resync_Periodic=3600+600 (repeatable); others take the guide's defaults.
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Consecutive failed resyncs so far (0: the last resync succeeded).
        #[arg(long, default_value_t = 0)]
        failures: u32,
        /// Consecutive successful periodic resyncs (picks the element of a list Resync_Periodic).
        #[arg(long, default_value_t = 0)]
        successes: u32,
        /// Local time of day for Resync_At, as hhmm (default: the current UTC time).
        #[arg(long)]
        now: Option<String>,
        /// Seed for the random delays (default: from the clock).
        #[arg(long)]
        seed: Option<u64>,
        /// How many retry delays to list.
        #[arg(long, default_value_t = 6)]
        count: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Macro variables by macro name.
#[derive(Args)]
pub struct VarArgs {
    /// A macro variable, e.g. --var MA=000e08012345 --var A=ABCDEF (repeatable). MA also sets MAU and MAC.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
}

impl VarArgs {
    fn variables(&self) -> Result<Variables> {
        let mut v = Variables::new();
        for pair in &self.vars {
            let Some((name, value)) = pair.split_once('=') else {
                bail!("--var {pair:?}: expected NAME=VALUE");
            };
            if !macros::is_known(name) {
                bail!("--var {name}: not a macro name a phone knows (e.g. MA, PN, SWVER, A..P, SA..SD, UID1)");
            }
            v.set(name, value);
        }
        Ok(v)
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ContextArg {
    General,
    Credential,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    Profile,
    Upgrade,
    Report,
}

fn syntax(text: &str, e: &SyntaxError) -> ExitCode {
    eprintln!("provisor: syntax error at column {}:\n{}", e.column, e.render(text));
    ExitCode::from(SYNTAX_ERROR)
}

fn selection_json(s: &Selection) -> serde_json::Value {
    let assignments: Vec<_> = s.assignments.iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
    json!({
        "alternative": s.alternative,
        "assignments": assignments,
        "options": {
            "key": s.options.key, "uid": s.options.uid, "pwd": s.options.pwd,
            "post": s.options.post, "alias": s.options.alias,
        },
        "url": s.url.as_ref().map(|u| json!({"scheme": u.scheme.as_str(), "host": u.host, "port": u.port, "path": u.path})),
    })
}

fn selection_text(s: &Selection) -> String {
    let mut out = String::new();
    for (i, e) in &s.conditions {
        for c in &e.comparisons {
            out += &format!("alternative {i}: {} is {}\n", c.text, c.holds);
        }
    }
    match s.alternative {
        None => out += "no alternative applies: the rule is skipped\n",
        Some(i) => out += &format!("selected alternative {i}\n"),
    }
    for (n, v) in &s.assignments {
        out += &format!("assign {n} = {v:?}\n");
    }
    let o = &s.options;
    for (name, v) in [("key", &o.key), ("uid", &o.uid), ("pwd", &o.pwd), ("post", &o.post), ("alias", &o.alias)] {
        if let Some(v) = v {
            out += &format!("--{name} {v:?}\n");
        }
    }
    if let Some(body) = &o.post_body {
        out += &format!("POST body {body:?}\n");
    }
    if let Some(u) = &s.url {
        out += &format!("fetch {u}\n");
    }
    out
}

pub fn run(cmd: RuleCommand) -> Result<ExitCode> {
    match cmd {
        RuleCommand::Expand { vars, context, text } => {
            let context = match context {
                ContextArg::General => Context::General,
                ContextArg::Credential => Context::Credential,
            };
            println!("{}", macros::expand(&text, &vars.variables()?, context));
            Ok(ExitCode::SUCCESS)
        }
        RuleCommand::Cond { vars, expr } => match condition::evaluate(&expr, &vars.variables()?) {
            Ok(e) => {
                println!("{}", e.holds);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(syntax(&expr, &e)),
        },
        RuleCommand::Eval { vars, dhcp_server, kind, rule, json } => {
            let kind = match kind {
                KindArg::Profile => RuleKind::Profile,
                KindArg::Upgrade => RuleKind::Upgrade,
                KindArg::Report => RuleKind::Report,
            };
            let parsed = match Rule::parse(&rule, kind) {
                Ok(r) => r,
                Err(e) => return Ok(syntax(&rule, &e)),
            };
            let v = vars.variables()?;
            let selections: Vec<Selection> = if kind == RuleKind::Report {
                match parsed.evaluate_each(&v, dhcp_server.as_deref()) {
                    Ok(s) => s,
                    Err(e) => return Ok(syntax(&rule, &e)),
                }
            } else {
                match parsed.evaluate(&v, dhcp_server.as_deref()) {
                    Ok(s) => vec![s],
                    Err(e) => return Ok(syntax(&rule, &e)),
                }
            };
            if json {
                let value = if kind == RuleKind::Report {
                    serde_json::Value::Array(selections.iter().map(selection_json).collect())
                } else {
                    selection_json(&selections[0])
                };
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                for s in &selections {
                    print!("{}", selection_text(s));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RuleCommand::Schedule { params, failures, successes, now, seed, count, json } => {
            let mut map = std::collections::HashMap::new();
            for p in &params {
                let Some((n, v)) = p.split_once('=') else { bail!("--param {p:?}: expected NAME=VALUE") };
                map.insert(n.trim().to_string(), v.to_string());
            }
            let p = match ResyncParameters::from_parameters(|n| map.get(n).cloned()) {
                Ok(p) => p,
                Err(e) => {
                    let text = map.get(&e.parameter).cloned().unwrap_or_default();
                    eprintln!("provisor: {}: syntax error:\n{}", e.parameter, e.error.render(&text));
                    return Ok(ExitCode::from(SYNTAX_ERROR));
                }
            };
            let now = match now {
                Some(t) => match TimeOfDay::parse(&t) {
                    Ok(Some(t)) => t,
                    _ => bail!("--now {t:?}: expected hhmm, e.g. 0930"),
                },
                None => {
                    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
                    TimeOfDay { seconds: (secs % 86_400) as u32 }
                }
            };
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
            });
            let mut rng = SplitMix64(seed);
            let boot = schedule::after_boot(&p, &mut rng).map(|n| n.delay);
            let next = schedule::next_resync(&p, failures, successes, now, &mut rng);
            let retries: Vec<u64> = (1..=count).filter_map(|f| p.error_retry.delay(f as usize - 1, &mut rng)).collect();
            let upgrades: Vec<u64> = (1..=count).filter_map(|f| schedule::upgrade_retry(&p, f, &mut rng)).collect();
            if json {
                let value = json!({
                    "boot": boot,
                    "next_resync": next.map(|n| json!({"delay": n.delay, "reason": n.reason.as_str()})),
                    "error_retry": retries,
                    "upgrade_retry": upgrades,
                    "forced_resync_delay": schedule::forced_after(&p),
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                match boot {
                    Some(d) => println!("after boot: resync in {d} s (Resync_On_Reset)"),
                    None => println!("after boot: no resync (Resync_On_Reset is No)"),
                }
                match next {
                    Some(n) => println!("next resync in {} s ({})", n.delay, n.reason.as_str()),
                    None => println!("no further resync is scheduled"),
                }
                println!("error retries: {retries:?}");
                println!("upgrade retries: {upgrades:?}");
                println!("a due resync waits at most {} s for idle lines", schedule::forced_after(&p));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
