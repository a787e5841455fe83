//! Who is asking: the phone's `User-Agent` (specs.md §4.3) and its HTTPS client certificate, whose subject carries
//! the product name in `OU`, the serial number in `L` and the MAC address in `S` (8800 MPP AG, "HTTPS and client
//! certificates"; specs.md §4.4).

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::inventory::Mac;

/// What a request says about the phone that sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// MAC address.
    pub mac: Option<Mac>,
    /// Product name, e.g. `CP-7832-3PCC`.
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Firmware version, e.g. `11.0.1`.
    pub firmware: Option<String>,
}

/// Parses the User-Agent forms phones send:
/// `Cisco-CP-7832-3PCC/11.0.1 (00562b043615)`, `Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)`,
/// `Cisco/SPA525G-7.4.4 (CBT141900G7)`, `Linksys/SPA-942-6.1.5(a) (88019FA42805)` and `cisco/CP-8841-3PCC
/// (88012BA01234)`. Returns `None` for anything else (browsers, curl).
pub fn parse_user_agent(ua: &str) -> Option<Claims> {
    let ua = ua.trim();
    let (head, tail) = ua.split_once(' ').unwrap_or((ua, ""));
    let lower = head.to_ascii_lowercase();
    let product = if lower.starts_with("cisco-") {
        &head["cisco-".len()..]
    } else if lower.starts_with("cisco/") || lower.starts_with("linksys/") {
        &head[head.find('/')? + 1..]
    } else {
        return None;
    };
    let (model, firmware) = match product.split_once('/') {
        Some((m, v)) => (m, Some(v)),
        None => match product.rfind('-') {
            Some(i) if product[i + 1..].contains('.') => (&product[..i], Some(&product[i + 1..])),
            _ => (product, None),
        },
    };
    if model.is_empty() || !model.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    let mut claims =
        Claims { model: Some(model.to_string()), firmware: firmware.map(str::to_string), ..Claims::default() };
    let mut rest = tail.trim();
    while let Some(inner) = rest.strip_prefix('(') {
        let end = inner.find(')')?;
        let value = &inner[..end];
        if claims.mac.is_none() && value.len() == 12 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            claims.mac = value.parse().ok();
        } else if claims.serial.is_none() && !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            claims.serial = Some(value.to_string());
        }
        rest = inner[end + 1..].trim_start();
    }
    Some(claims)
}

/// Reads `OU` (model), `L` (serial) and `S`/`ST` (MAC) from a DER certificate's subject.
pub fn certificate_claims(der: &[u8]) -> Option<Claims> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let model = subject.iter_organizational_unit().find_map(|a| a.as_str().ok().map(str::to_string));
    let serial = subject.iter_locality().find_map(|a| a.as_str().ok().map(str::to_string));
    let mac = subject
        .iter_state_or_province()
        .find_map(|a| a.as_str().ok().map(str::to_string))
        .and_then(|s| s.parse::<Mac>().ok());
    Some(Claims { mac, model, serial, firmware: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> Option<Mac> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn user_agents_from_the_guides() {
        let c = parse_user_agent("Cisco-CP-7832-3PCC/11.0.1 (00562b043615)").unwrap();
        assert_eq!(c.model.as_deref(), Some("CP-7832-3PCC"));
        assert_eq!(c.firmware.as_deref(), Some("11.0.1"));
        assert_eq!(c.mac, mac("00562b043615"));
        let c = parse_user_agent("Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)").unwrap();
        assert_eq!((c.model.as_deref(), c.firmware.as_deref()), (Some("SPA508G"), Some("7.4.4")));
        assert_eq!((c.mac, c.serial.as_deref()), (mac("0002fdff2103"), Some("CBT141400UK")));
        let c = parse_user_agent("Cisco/SPA525G-7.4.4 (CBT141900G7)").unwrap();
        assert_eq!((c.mac, c.serial.as_deref()), (None, Some("CBT141900G7")));
        let c = parse_user_agent("Linksys/SPA-942-6.1.5(a) (88019FA42805)").unwrap();
        assert_eq!((c.model.as_deref(), c.firmware.as_deref()), (Some("SPA-942"), Some("6.1.5(a)")));
        assert_eq!(c.mac, mac("88019fa42805"));
        let c = parse_user_agent("cisco/CP-8841-3PCC (88012BA01234)").unwrap();
        assert_eq!((c.model.as_deref(), c.firmware), (Some("CP-8841-3PCC"), None));
        assert_eq!(parse_user_agent("curl/8.5.0"), None);
        assert_eq!(parse_user_agent("Mozilla/5.0 (X11; Linux x86_64)"), None);
        assert_eq!(parse_user_agent(""), None);
    }
}
