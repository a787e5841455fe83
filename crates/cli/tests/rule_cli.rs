//! `provisor rule ...` end to end: output formats and exit codes.

use std::process::{Command, Output};

fn provisor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisor")).args(args).output().expect("run provisor")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn expand_prints_only_the_expansion() {
    let o = provisor(&[
        "rule",
        "expand",
        "--var",
        "MA=000e08012345",
        "--var",
        "A=ABCDEF",
        "$(MAU)config.cfg/$(A:2:3)/$STRANGE$MAU.cfg",
    ]);
    assert_eq!(stdout(&o), "000E08012345config.cfg/CDE/$STRANGE000E08012345.cfg\n");
    let o = provisor(&["rule", "expand", "--var", "SA=u", "$SA"]);
    assert_eq!(stdout(&o), "$SA\n");
    let o = provisor(&["rule", "expand", "--var", "SA=u", "--context", "credential", "$SA"]);
    assert_eq!(stdout(&o), "u\n");
    let o = provisor(&["rule", "expand", "--var", "NOPE=1", "x"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn cond_prints_true_or_false_and_exits_2_on_errors() {
    let args = ["rule", "cond", "--var", "UPGTMR=400", "--var", "PRVTMR=600", "$UPGTMR gt 300 and $PRVTMR ge 600"];
    assert_eq!(stdout(&provisor(&args)), "true\n");
    assert_eq!(stdout(&provisor(&["rule", "cond", "--var", "PRVTMR=1", "$PRVTMR ge 600"])), "false\n");
    let o = provisor(&["rule", "cond", "--var", "SWVER=sip88xx.11-0-1MPP-312", "1 eq 1 and $SWVER gt 5"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("column 12") && err.contains("           ^ cannot compare"), "{err}");
}

#[test]
fn eval_json_shape() {
    let o = provisor(&[
        "rule",
        "eval",
        "--var",
        "A=new",
        "--var",
        "MA=000e08012345",
        "--var",
        "SB=k3y",
        "--dhcp-server",
        "10.0.0.9",
        "(\"$A\" ne \"Provisioned\")? (Line_Enable_1_ = \"No\"; b = \"$MA\";)! [--key $SB --post c] /init/$MA.cfg | https://p/configs",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["alternative"], 0);
    assert_eq!(v["assignments"][0]["name"], "Line_Enable_1_");
    assert_eq!(v["assignments"][1]["name"], "GPP_B");
    assert_eq!(v["assignments"][1]["value"], "000e08012345");
    assert_eq!(v["options"]["key"], "k3y");
    assert_eq!(v["options"]["post"], "GPP_C");
    assert_eq!(v["options"]["uid"], serde_json::Value::Null);
    assert_eq!(
        v["url"],
        serde_json::json!({"scheme": "tftp", "host": "10.0.0.9", "port": 69, "path": "/init/000e08012345.cfg"})
    );

    let o = provisor(&["rule", "eval", "(1 eq 2)? http://a/x", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["alternative"], serde_json::Value::Null);
    assert_eq!(v["url"], serde_json::Value::Null);

    let o = provisor(&[
        "rule",
        "eval",
        "--kind",
        "report",
        "[--status]http://h/s.xml [--delta --key k]http://h/d.xml",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["options"]["key"], "k");
}

#[test]
fn eval_syntax_errors_exit_2_with_a_caret() {
    for (rule, kind, col) in [
        ("http://a/x | http://b/y", "profile", 1),
        ("[--key k] http://h/f.loads", "upgrade", 1),
        ("/no-server.loads", "upgrade", 1),
        ("(1 eq 1)? [--nope] /x", "profile", 12),
    ] {
        let o = provisor(&["rule", "eval", "--kind", kind, rule]);
        assert_eq!(o.status.code(), Some(2), "{rule}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("column {col}")), "{rule}: {err}");
        assert!(err.contains(rule), "{err}");
    }
}

#[test]
fn schedule_json() {
    let o = provisor(&[
        "rule",
        "schedule",
        "--param",
        "Resync_Periodic=7200",
        "--param",
        "Resync_Error_Retry_Delay=1800,3600,7200,14400",
        "--failures",
        "0",
        "--seed",
        "1",
        "--now",
        "1200",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["next_resync"], serde_json::json!({"delay": 7200, "reason": "periodic"}));
    assert_eq!(v["error_retry"], serde_json::json!([1800, 3600, 7200, 14400, 14400, 14400]));
    assert_eq!(v["forced_resync_delay"], 14400);
    let o = provisor(&[
        "rule",
        "schedule",
        "--param",
        "Resync_At=1000",
        "--param",
        "Resync_At_Random_Delay=0",
        "--now",
        "0900",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["next_resync"], serde_json::json!({"delay": 3600, "reason": "resync_at"}));
    let o = provisor(&["rule", "schedule", "--param", "Resync_Periodic=1h"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Resync_Periodic"));
}
