//! The context an operator's screen needs, on the bridged INVITE (and, for a REFER, as
//! URI headers of its Refer-To): the names are fixed in the shared interfaces page.
//! `User-to-User` (RFC 7433) carries the same as hex-encoded JSON, for PBXs that pass only
//! that header through to the agent's desktop.

use serde::Serialize;

/// What the gateway knows about the call when it transfers it.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Context {
    pub caller: String,
    /// The menu option's id (`operator`), empty when none was chosen.
    pub menu: String,
    /// The ticket reference; empty when none could be allocated (the header is then left out).
    pub reference: String,
    pub call_uid: String,
}

/// A header value must stay one line of visible characters: a caller number or menu id
/// from the network never injects a header.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(128)
        .collect::<String>()
        .trim()
        .to_owned()
}

impl Context {
    /// `(name, value)` pairs, absent values left out.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        for (name, v) in [
            ("X-Hotline-Caller", &self.caller),
            ("X-Hotline-Menu", &self.menu),
            ("X-Hotline-Reference", &self.reference),
            ("X-Hotline-Call-Uid", &self.call_uid),
        ] {
            let v = clean(v);
            if !v.is_empty() {
                h.push((name, v));
            }
        }
        h.push(("User-to-User", self.user_to_user()));
        h
    }

    /// RFC 7433: `<hex>;encoding=hex;purpose=hotline`.
    pub fn user_to_user(&self) -> String {
        let json = serde_json::to_string(&Context {
            caller: clean(&self.caller),
            menu: clean(&self.menu),
            reference: clean(&self.reference),
            call_uid: clean(&self.call_uid),
        })
        .unwrap_or_default();
        let hex: String = json.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{hex};encoding=hex;purpose=hotline")
    }

    /// The headers as URI headers of a Refer-To (RFC 3261 §19.1.5: `?name=value&…`,
    /// values percent-encoded).
    pub fn uri_headers(&self) -> String {
        self.headers()
            .into_iter()
            .map(|(n, v)| format!("{n}={}", percent(&v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()+:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Context {
        Context {
            caller: "13812345678".into(),
            menu: "operator".into(),
            reference: String::new(),
            call_uid: "c-1".into(),
        }
    }

    #[test]
    fn headers_name_the_caller_menu_and_call_and_leave_out_an_unknown_reference() {
        let h = cx().headers();
        let names: Vec<_> = h.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "X-Hotline-Caller",
                "X-Hotline-Menu",
                "X-Hotline-Call-Uid",
                "User-to-User"
            ]
        );
        assert_eq!(h[0].1, "13812345678");
    }

    #[test]
    fn user_to_user_is_hex_json_with_encoding_and_purpose() {
        let v = cx().user_to_user();
        let (hex, params) = v.split_once(';').unwrap();
        assert_eq!(params, "encoding=hex;purpose=hotline");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["caller"], "13812345678");
        assert_eq!(json["menu"], "operator");
        assert_eq!(json["call_uid"], "c-1");
    }

    #[test]
    fn a_hostile_caller_number_cannot_add_a_header() {
        let mut c = cx();
        c.caller = "138\r\nX-Evil: 1".into();
        for (_, v) in c.headers() {
            assert!(!v.contains('\r') && !v.contains('\n'));
        }
        assert!(c.uri_headers().contains("X-Hotline-Caller=138X-Evil:%201"));
    }
}
