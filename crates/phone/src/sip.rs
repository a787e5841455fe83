//! The phone's answer to a SIP NOTIFY from the proxy (003, *Enable Parameters*): "The device challenges the request
//! with a 401 response [...] The device expects an authenticated subsequent request before it honors the resync
//! request from the proxy." Sans-IO: a datagram in, the response datagram and the authenticated event out. The
//! challenge is answered with the credentials of line 1 (`Auth_ID_1_`, or `User_ID_1_` when it is empty, and
//! `Password_1_`). Only NOTIFY is understood; this is not a SIP stack (no registration, no calls).

/// What the phone does with a SIP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyAnswer {
    /// The SIP response to send back to where the request came from.
    pub response: String,
    /// The `Event:` of an authenticated NOTIFY, for [`crate::phone::Phone::sip_notify`].
    pub event: Option<String>,
    /// What happened, for the timeline.
    pub note: String,
}

/// Challenges NOTIFYs and checks the answers; `nonce` is the challenge it hands out.
#[derive(Debug, Clone)]
pub struct NotifyAgent {
    nonce: String,
    realm: String,
}

impl NotifyAgent {
    /// An agent whose challenges carry `nonce` (unpredictable, from the driver) in `realm`.
    pub fn new(nonce: String, realm: &str) -> NotifyAgent {
        NotifyAgent { nonce, realm: realm.to_string() }
    }

    /// Answers one datagram, checked against `user`/`password`. `None`: not a SIP request (ignored, as a SIP UA
    /// ignores garbage).
    pub fn handle(&mut self, datagram: &[u8], user: &str, password: &str) -> Option<NotifyAnswer> {
        let text = std::str::from_utf8(datagram).ok()?;
        let (head, _body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.split("\r\n");
        let request_line = lines.next()?;
        let mut parts = request_line.split(' ');
        let (method, _uri, version) = (parts.next()?, parts.next()?, parts.next()?);
        if version != "SIP/2.0" || method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let headers: Vec<(String, &str)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (compact(k.trim()).to_ascii_lowercase(), v.trim()))
            .collect();
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let echoed: String = headers
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "via" | "from" | "to" | "call-id" | "cseq"))
            .map(|(k, v)| {
                let v = if k == "to" && !v.contains(";tag=") {
                    format!("{v};tag=sim{}", self.nonce.get(..8).unwrap_or(&self.nonce))
                } else {
                    v.to_string()
                };
                format!("{}: {v}\r\n", canonical(k))
            })
            .collect();
        let respond = |status: &str, extra: &str| {
            format!("SIP/2.0 {status}\r\n{echoed}{extra}Server: provisor-phone\r\nContent-Length: 0\r\n\r\n")
        };
        if method != "NOTIFY" {
            return Some(NotifyAnswer {
                response: respond("501 Not Implemented", ""),
                event: None,
                note: format!("SIP {method}: not understood (501)"),
            });
        }
        let event = header("event").map(|e| e.split(';').next().unwrap_or("").trim().to_string()).unwrap_or_default();
        let authorization = header("authorization").or_else(|| header("proxy-authorization"));
        match authorization {
            Some(a) if provisor_auth::check_digest(a, user, password, "NOTIFY", &self.nonce) => Some(NotifyAnswer {
                response: respond("200 OK", ""),
                event: Some(event.clone()),
                note: "SIP NOTIFY: authenticated with line 1's credentials (200)".into(),
            }),
            answered => {
                let challenge = format!(
                    "WWW-Authenticate: Digest realm=\"{}\", nonce=\"{}\", algorithm=MD5\r\n",
                    self.realm, self.nonce
                );
                let why = if answered.is_some() { "wrong credentials" } else { "challenged" };
                Some(NotifyAnswer {
                    response: respond("401 Unauthorized", &challenge),
                    event: None,
                    note: format!("SIP NOTIFY Event: {event}: {why} (401)"),
                })
            }
        }
    }
}

/// RFC 3261 §7.3.3 compact header names.
fn compact(name: &str) -> &str {
    match name {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "o" => "event",
        other => other,
    }
}

fn canonical(name: &str) -> &'static str {
    match name {
        "via" => "Via",
        "from" => "From",
        "to" => "To",
        "call-id" => "Call-ID",
        _ => "CSeq",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use provisor_auth::md5_hex;

    fn notify(auth: Option<&str>) -> String {
        format!(
            "NOTIFY sip:2001@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:proxy@127.0.0.1>;tag=1\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: abc\r\nCSeq: 1 NOTIFY\r\n\
             Event: resync\r\n{}Content-Length: 0\r\n\r\n",
            auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default()
        )
    }

    #[test]
    fn a_notify_is_challenged_then_honoured_with_the_line_credentials() {
        let mut agent = NotifyAgent::new("0123456789abcdef".into(), "phone");
        let a = agent.handle(notify(None).as_bytes(), "2001", "pw").unwrap();
        assert!(a.response.starts_with("SIP/2.0 401 Unauthorized\r\n"), "{}", a.response);
        assert!(a.response.contains("Call-ID: abc\r\n") && a.response.contains("CSeq: 1 NOTIFY\r\n"));
        assert!(a.response.contains("nonce=\"0123456789abcdef\"") && a.event.is_none());
        let uri = "sip:2001@127.0.0.1:5060";
        let ha1 = md5_hex("2001:phone:pw");
        let ha2 = md5_hex(&format!("NOTIFY:{uri}"));
        let response = md5_hex(&format!("{ha1}:0123456789abcdef:{ha2}"));
        let good = format!(
            "Digest username=\"2001\", realm=\"phone\", nonce=\"0123456789abcdef\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=MD5"
        );
        let a = agent.handle(notify(Some(&good)).as_bytes(), "2001", "pw").unwrap();
        assert!(a.response.starts_with("SIP/2.0 200 OK\r\n"), "{}", a.response);
        assert_eq!(a.event.as_deref(), Some("resync"));
        let a = agent.handle(notify(Some(&good)).as_bytes(), "2001", "other").unwrap();
        assert!(a.response.starts_with("SIP/2.0 401") && a.note.contains("wrong credentials"));
        assert!(agent.handle(b"garbage", "2001", "pw").is_none());
        let options = notify(None).replacen("NOTIFY sip", "OPTIONS sip", 1);
        assert!(agent.handle(options.as_bytes(), "2001", "pw").unwrap().response.starts_with("SIP/2.0 501"));
    }
}
