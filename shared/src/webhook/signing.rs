//! An endpoint's signing secrets, as Standard Webhooks has them: `whsec_`
//! and the base64 of the key. A secret's string holds one, or two
//! separated by whitespace while rotating: every one signs, and the
//! `webhook-signature` header lists each signature, so a receiver
//! holding either secret verifies.

use base64::Engine;
use standardwebhooks::Webhook;
use std::fmt;

/// The shortest key accepted, in bytes (Svix's are 24 to 64).
const MIN_KEY_BYTES: usize = 16;

/// Signs with each of an endpoint's secrets.
pub struct Signer {
    keys: Vec<Webhook>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({} secrets, <redacted>)", self.keys.len())
    }
}

impl Signer {
    /// Reads a secret's string; what is wrong is said without showing it.
    pub fn parse(secret: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (n, one) in secret.split_whitespace().enumerate() {
            let Some(encoded) = one.strip_prefix("whsec_") else {
                return Err(format!("secret {} does not start with whsec_", n + 1));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| format!("secret {} is not whsec_ and base64", n + 1))?;
            if bytes.len() < MIN_KEY_BYTES {
                return Err(format!(
                    "secret {} is {} bytes; at least {MIN_KEY_BYTES}",
                    n + 1,
                    bytes.len()
                ));
            }
            keys.push(Webhook::from_bytes(bytes).map_err(|e| e.to_string())?);
        }
        match keys.len() {
            0 => Err("the secret is empty".to_owned()),
            1 | 2 => Ok(Self { keys }),
            n => Err(format!("{n} secrets; one, or two while rotating")),
        }
    }

    /// The `webhook-signature` header's value for `body` sent as message
    /// `id` at `timestamp` (Unix seconds).
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        self.keys
            .iter()
            .filter_map(|key| key.sign(id, timestamp, body.as_bytes()).ok())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A new secret for an endpoint: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source works");
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_secret_signs_and_either_verifies_while_rotating() {
        let (old, new) = (new_secret(), new_secret());
        let signer = Signer::parse(&format!("{old}  {new}")).unwrap();
        let signature = signer.sign("msg_1", 1_700_000_000, "{\"a\":1}");
        let parts: Vec<&str> = signature.split(' ').collect();
        assert_eq!(parts.len(), 2);
        for (secret, part) in [(&old, parts[0]), (&new, parts[1])] {
            let alone = Signer::parse(secret).unwrap();
            assert_eq!(alone.sign("msg_1", 1_700_000_000, "{\"a\":1}"), part);
            assert!(part.starts_with("v1,"));
        }
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn a_malformed_secret_is_named_without_being_shown() {
        for (bad, said) in [
            ("", "empty"),
            ("abc", "whsec_"),
            ("whsec_!!!", "base64"),
            ("whsec_c2hvcnQ=", "at least"),
        ] {
            let why = Signer::parse(bad).unwrap_err();
            assert!(why.contains(said), "{bad}: {why}");
            assert!(bad.len() < 6 || !why.contains(bad), "{why}");
        }
        let three = [new_secret(), new_secret(), new_secret()].join(" ");
        assert!(Signer::parse(&three).unwrap_err().contains("3 secrets"));
        assert!(!format!("{:?}", Signer::parse(&new_secret()).unwrap()).contains("whsec"));
    }
}
